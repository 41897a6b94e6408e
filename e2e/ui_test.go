package e2e

// TestUI drives the web UI (issue 18) in a real browser: Debian's chromium,
// headless, through chromedp, against a real `ice dev` the test starts (free
// ports, a temp data dir, the client settings read from its dev.env). The
// browser trusts the dev server's certificate by its public key
// (--ignore-certificate-errors-spki-list), not by ignoring TLS errors.
//
// One cluster and one browser for the whole test, so it stays well under a
// minute; the subtests run in order and build on each other (the sign-in,
// then ticker deployed while the components page is open). Every wait is a
// poll of the page with a deadline. Without chromium the test fails with a
// pointer to .ci/install-tools.sh: CI must not skip it.
//
// With -ui.screenshots it also writes docs/ui/<page>.png (1280x800) of each
// page once that page shows what the test waited for:
//
//	go test ./e2e -run 'TestUI$' -ui.screenshots

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/internal/proctest"
	"github.com/ice-run/ice/internal/testcluster"
)

// uiWait bounds each wait for the page to show something.
const uiWait = 15 * time.Second

// uiDev is the `ice dev` of a browser test and its client settings.
type uiDev struct {
	configDir string
	addr      string // https://127.0.0.1:port
	caFile    string
	token     string // the dev (management) token
	root      *api.Client
}

func startUIDev(t *testing.T, dir string) *uiDev {
	t.Helper()
	configDir := t.TempDir()
	proctest.StartT(t, proctest.Spec{Name: "dev", Bin: iceBin, LogPath: filepath.Join(dir, "dev.log"),
		Env: []string{"ICE_CONFIG_DIR=" + configDir},
		Args: []string{"dev", "--data-dir", filepath.Join(dir, "data"), "--plugin-dir", pluginDir,
			"--http", testcluster.FreeAddr(t), "--raft", testcluster.FreeAddr(t), "--gossip", testcluster.FreeAddr(t),
			"--agent-gossip", testcluster.FreeAddr(t)}})
	testcluster.WaitFor(t, 30*time.Second, "dev.env written", func() bool {
		_, err := os.Stat(filepath.Join(configDir, "dev.env"))
		return err == nil
	})
	d := &uiDev{configDir: configDir, addr: devSetting(t, configDir, "ICE_ADDR"),
		caFile: devSetting(t, configDir, "ICE_CACERT"), token: devSetting(t, configDir, "ICE_TOKEN")}
	if !strings.Contains(d.addr, "://") {
		d.addr = "https://" + d.addr
	}
	root, err := api.NewClientConfig(api.Config{Address: d.addr, CACert: d.caFile, Token: d.token})
	if err != nil {
		t.Fatal(err)
	}
	d.root = root
	testcluster.WaitFor(t, 30*time.Second, "dev leader", func() bool {
		st, err := root.Status(tctx(t, 2*time.Second))
		return err == nil && st.Leader != ""
	})
	return d
}

// statusChainHead is the head of the event chain as GET /v1/status
// reports it (events.head).
func (d *uiDev) statusChainHead(t *testing.T) string {
	t.Helper()
	st, err := d.root.Status(tctx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("GET /v1/status: %v", err)
	}
	if st.Events == nil || st.Events.Head == "" {
		t.Fatalf("GET /v1/status has no events.head: %+v", st.Events)
	}
	return st.Events.Head
}

// applyPolicy puts rules as the ACL policy name.
func (d *uiDev) applyPolicy(t *testing.T, name, rules string) {
	t.Helper()
	if _, err := d.root.ApplyPolicy(tctx(t, 5*time.Second), name, &api.ACLPolicyRequest{Rules: rules}); err != nil {
		t.Fatalf("apply policy %s: %v", name, err)
	}
}

// policyToken puts rules as the policy name and answers the secret of a
// new token name holding it.
func (d *uiDev) policyToken(t *testing.T, name, rules string) string {
	t.Helper()
	d.applyPolicy(t, name, rules)
	tok, err := d.root.CreateToken(tctx(t, 5*time.Second), &api.ACLTokenRequest{Name: name, Policies: []string{name}})
	if err != nil {
		t.Fatalf("create token %s: %v", name, err)
	}
	return tok.SecretID
}

// uiSignIn signs the tab in on /ui/login with token and waits for the
// cluster page.
func uiSignIn(t *testing.T, b *uiBrowser, tab context.Context, token, screenshot string) {
	t.Helper()
	b.open(t, tab, "/ui/login")
	b.do(t, tab, "login form", uiWait, chromedp.WaitVisible(chromedp.CSS(`input#token`)),
		chromedp.WaitVisible(chromedp.CSS(`button#signin`)))
	if typ := uiEval[string](t, tab, `document.querySelector('input#token').type`); typ != "password" {
		t.Errorf("input#token has type %q, want password", typ)
	}
	if screenshot != "" {
		b.screenshot(t, tab, screenshot)
	}
	b.do(t, tab, "sign in", uiWait, chromedp.SendKeys(chromedp.CSS(`input#token`), token),
		chromedp.Click(chromedp.CSS(`button#signin`)))
	b.waitJS(t, tab, uiWait, "signed in: on /ui/cluster with the token in sessionStorage",
		`location.pathname === '/ui/cluster' && sessionStorage.getItem('ice-token') === `+jsString(token),
		`location.pathname + ' (token stored: ' + (sessionStorage.getItem('ice-token') !== null) + ')'`)
}

// uiRunsCell is the JavaScript text of ticker's .runs cell ("" while the
// row is absent).
const uiRunsCell = `((document.querySelector('tr[data-component="ticker"] .runs') || {}).textContent || '')`

func TestUI(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	dev := startUIDev(t, dir)
	b := startUIBrowser(t, chromium, dev.addr, dev.caFile, dir)
	admin := b.tab("dev-token")
	var runIDs []string

	if !t.Run("SignIn", func(t *testing.T) {
		// Without a token a page sends the browser to the login page.
		b.open(t, admin, "/ui/cluster")
		b.waitJS(t, admin, uiWait, "/ui/cluster without a token redirects to /ui/login",
			`location.pathname === '/ui/login'`, `location.pathname`)
		uiSignIn(t, b, admin, dev.token, "")
		for _, id := range []string{"nav-cluster", "nav-nodes", "nav-components", "nav-events", "nav-grants", "nav-memory", "signout"} {
			if !uiEval[bool](t, admin, `document.getElementById(`+jsString(id)+`) !== null`) {
				t.Errorf("the signed-in page has no #%s", id)
			}
		}
	}) {
		return
	}

	t.Run("ClusterShowsLeader", func(t *testing.T) {
		b.open(t, admin, "/ui/cluster")
		b.waitJS(t, admin, uiWait, `#leader is "dev"`,
			`(document.querySelector('#leader') || {}).textContent?.trim() === 'dev'`,
			`(document.querySelector('#leader') || {textContent: '(no #leader)'}).textContent`)
		b.waitJS(t, admin, uiWait, `table#servers has the row tr[data-server=dev]`,
			`document.querySelector('table#servers tr[data-server="dev"]') !== null`,
			`(document.querySelector('table#servers') || {outerHTML: '(no table#servers)'}).outerHTML.slice(0, 500)`)
		b.waitJS(t, admin, uiWait, `#digests says "agree"`,
			`(document.querySelector('#digests') || {}).textContent?.trim() === 'agree'`,
			`(document.querySelector('#digests') || {textContent: '(no #digests)'}).textContent`)
		secure := strings.TrimSpace(uiEval[string](t, admin, `(document.querySelector('#secure') || {textContent: ''}).textContent`))
		if low := strings.ToLower(secure); secure == "" || strings.Contains(low, "false") || strings.Contains(low, "insecure") {
			t.Errorf("#secure shows %q for a secure dev cluster", secure)
		}
	})

	t.Run("Nodes", func(t *testing.T) {
		b.do(t, admin, "follow a#nav-nodes", uiWait, chromedp.Click(chromedp.CSS(`a#nav-nodes`)))
		b.waitJS(t, admin, uiWait, "on /ui/nodes", `location.pathname === '/ui/nodes'`, `location.pathname`)
		nodes, err := dev.root.Nodes(tctx(t, 5*time.Second))
		if err != nil || len(nodes) == 0 {
			t.Fatalf("nodes: %v %v", nodes, err)
		}
		for _, n := range nodes {
			b.waitJS(t, admin, uiWait, "table#nodes shows node "+n.ID,
				`document.querySelector('table#nodes tr[data-node=`+jsString(n.ID)+`]') !== null`,
				`Array.from(document.querySelectorAll('table#nodes tr[data-node]')).map(r => r.dataset.node).join(',') || '(no rows)'`)
		}
	})

	t.Run("ComponentsLive", func(t *testing.T) {
		b.open(t, admin, "/ui/components")
		b.do(t, admin, "table#components", uiWait, chromedp.WaitVisible(chromedp.CSS(`table#components`)))
		// The deploy form is for a token that may write components, also
		// while there are none yet.
		deployForm := `(() => { const v = s => { const e = document.querySelector(s); return e !== null && e.offsetParent !== null }; return v('textarea#deploy-spec') && v('button#deploy') })()`
		deployShow := `'textarea#deploy-spec: ' + (document.querySelector('textarea#deploy-spec') !== null) + ', button#deploy: ' + (document.querySelector('button#deploy') !== null)`
		emptyForm := b.checkJS(t, admin, 5*time.Second, "the dev token sees the deploy form on a cluster with no components", deployForm, deployShow)
		// A mark on the page's window: a reload would lose it.
		uiEval[bool](t, admin, `(window.__iceNoReload = true)`)
		if out, err := devCLI(t, dev.configDir, "deploy", "-f", filepath.Join("..", "examples", "ticker.hcl")); err != nil {
			t.Fatalf("ice deploy -f examples/ticker.hcl: %v\n%s", err, out)
		}
		b.waitJS(t, admin, 30*time.Second, "ticker's two runs EXECUTING in tr[data-component=ticker] .runs, without a reload",
			`window.__iceNoReload === true && (`+uiRunsCell+`.match(/EXECUTING/g) || []).length === 2`,
			`'reloaded: ' + (window.__iceNoReload !== true) + ', .runs: ' + JSON.stringify(`+uiRunsCell+`)`)
		runs, _, err := dev.root.Runs(tctx(t, 5*time.Second), "ticker", nil)
		if err != nil || len(runs) != 2 {
			t.Fatalf("ticker runs from the API: %v %v", runs, err)
		}
		for _, r := range runs {
			runIDs = append(runIDs, r.ID)
			b.waitJS(t, admin, uiWait, "ticker's row links run "+r.ID+" (a.run to /ui/runs/"+r.ID+")",
				`Array.from(document.querySelectorAll('tr[data-component="ticker"] a.run')).some(a => new URL(a.href).pathname === `+jsString("/ui/runs/"+r.ID)+`)`,
				`Array.from(document.querySelectorAll('tr[data-component="ticker"] a.run')).map(a => a.getAttribute('href')).join(', ') || '(no a.run)'`)
		}
		if !emptyForm {
			b.checkJS(t, admin, uiWait, "the dev token sees the deploy form once ticker exists", deployForm, deployShow)
		}
		if n := uiEval[int](t, admin, `document.querySelectorAll('tr[data-component="ticker"] button.stop').length`); n == 0 {
			t.Errorf("the dev token sees no button.stop on ticker's row")
		}
	})
	if len(runIDs) == 0 {
		return // ticker did not go live: nothing below has a run to show
	}

	t.Run("RunTimeline", func(t *testing.T) {
		id := runIDs[0]
		b.clickLive(t, admin, "follow ticker's a.run to run "+id, `tr[data-component="ticker"] a.run[href$=`+jsString("/ui/runs/"+id)+`]`)
		b.waitJS(t, admin, uiWait, "on /ui/runs/"+id, `location.pathname === `+jsString("/ui/runs/"+id), `location.pathname`)
		for _, state := range []string{"PROVISIONED", "CONTEXT_READY", "EXECUTING"} {
			li := `document.querySelector('ol#timeline li.transition[data-to="` + state + `"]')`
			b.waitJS(t, admin, uiWait, "the timeline lists "+state+" with its actor",
				li+` !== null && (`+li+`.querySelector('.actor') || {}).textContent?.trim() !== ''`,
				`Array.from(document.querySelectorAll('ol#timeline li.transition')).map(l => l.dataset.to + ' by ' + JSON.stringify((l.querySelector('.actor') || {}).textContent)).join('; ') || '(no li.transition)'`)
			for _, cell := range []string{".index", ".time", ".actor", ".purpose", ".reason"} {
				if !uiEval[bool](t, admin, li+`.querySelector(`+jsString(cell)+`) !== null`) {
					t.Errorf("the %s transition has no %s", state, cell)
				}
			}
		}
		// The actors shown are those of the event log.
		events, err := dev.root.Events(tctx(t, 5*time.Second), 0, "ticker")
		if err != nil {
			t.Fatal(err)
		}
		actors := map[string]bool{}
		for _, e := range events {
			if e.Subject == id {
				actors[e.Actor] = true
			}
		}
		shown := uiEval[[]string](t, admin, `Array.from(document.querySelectorAll('ol#timeline li.transition .actor')).map(a => a.textContent.trim())`)
		for _, a := range shown {
			if !actors[a] {
				t.Errorf("the timeline shows actor %q, which no event of run %s has (actors: %v)", a, id, actors)
			}
		}
		// Who moves a run: the runtime places it, its agent reports the rest.
		for state, want := range map[string]string{"PROVISIONED": "runtime", "CONTEXT_READY": "agent:dev", "EXECUTING": "agent:dev"} {
			got := uiEval[string](t, admin, `document.querySelector('ol#timeline li.transition[data-to="`+state+`"] .actor').textContent.trim()`)
			if got != want {
				t.Errorf("the timeline's %s is by %q, want %q", state, got, want)
			}
		}
		for _, sel := range []string{"#grants", "#memory"} {
			if !uiEval[bool](t, admin, `document.querySelector(`+jsString(sel)+`) !== null`) {
				t.Errorf("the run page has no %s", sel)
			}
		}
	})

	t.Run("EventsChainHead", func(t *testing.T) {
		b.do(t, admin, "follow a#nav-events", uiWait, chromedp.Click(chromedp.CSS(`a#nav-events`)))
		b.waitJS(t, admin, uiWait, "on /ui/events with events", `location.pathname === '/ui/events' && document.querySelectorAll('table#events tr.event').length > 0`,
			`location.pathname + ', ' + document.querySelectorAll('table#events tr.event').length + ' tr.event'`)
		// New events may land while the browser checks: compare with the
		// server's head until they meet.
		deadline := time.Now().Add(uiWait)
		var head string
		for {
			head = dev.statusChainHead(t)
			if b.pollJS(admin, 2*time.Second, `(document.querySelector('#chain-head') || {}).textContent?.trim() === `+jsString(head)+
				` && (document.querySelector('#chain-status') || {}).textContent?.trim() === 'ok'`) {
				break
			}
			if time.Now().After(deadline) {
				got := uiEval[string](t, admin, `'#chain-head ' + JSON.stringify((document.querySelector('#chain-head') || {}).textContent) + ', #chain-status ' + JSON.stringify((document.querySelector('#chain-status') || {}).textContent)`)
				t.Fatalf("the events page shows %s; want GET /v1/status's head %s and status ok", got, head)
			}
		}
		t.Logf("#chain-head = %s, as GET /v1/status events.head", head)
		b.screenshot(t, admin, "events")
		// The component filter keeps ticker's events (by their seq, as
		// GET /v1/events?component=ticker lists them) and no other.
		events, err := dev.root.Events(tctx(t, 5*time.Second), 0, "ticker")
		if err != nil || len(events) == 0 {
			t.Fatalf("ticker's events: %v %v", events, err)
		}
		var seqs []string
		for _, e := range events {
			seqs = append(seqs, jsString(strconv.FormatUint(e.Seq, 10)))
		}
		b.do(t, admin, "filter on ticker", uiWait, chromedp.SendKeys(chromedp.CSS(`input#filter-component`), "ticker"))
		shown := `Array.from(document.querySelectorAll('table#events tr.event')).filter(r => r.offsetParent !== null)`
		b.waitJS(t, admin, uiWait, "filtered to ticker's events (seqs "+strings.Join(seqs, ",")+")",
			`(() => { const want = new Set([`+strings.Join(seqs, ",")+`]); const rows = `+shown+`; return rows.length > 0 && rows.every(r => want.has(r.dataset.seq)) })()`,
			`'seqs shown: ' + `+shown+`.map(r => r.dataset.seq).join(',')`)
		// With the type filter too: ticker's run.created events, both of
		// them, and nothing else.
		var created []string
		for _, e := range events {
			if e.Type == "run.created" {
				created = append(created, jsString(strconv.FormatUint(e.Seq, 10)))
			}
		}
		b.do(t, admin, "filter on type run.created", uiWait, chromedp.SendKeys(chromedp.CSS(`input#filter-type`), "run.created"))
		b.waitJS(t, admin, uiWait, "filtered to ticker's run.created events (seqs "+strings.Join(created, ",")+")",
			`(() => { const want = [`+strings.Join(created, ",")+`]; const rows = `+shown+`; return want.length === 2 && rows.length === want.length && rows.every(r => want.includes(r.dataset.seq)) })()`,
			`'seqs shown: ' + `+shown+`.map(r => r.dataset.seq).join(',')`)
	})

	t.Run("GrantsAndMemoryPages", func(t *testing.T) {
		// Their screenshots, with records and grants on them, are
		// TestUIMemoryGrants's.
		for _, p := range []struct{ nav, path, table string }{
			{"a#nav-grants", "/ui/grants", "table#grants"},
			{"a#nav-memory", "/ui/memory", "table#memory"},
		} {
			b.do(t, admin, "follow "+p.nav, uiWait, chromedp.Click(chromedp.CSS(p.nav)))
			b.waitJS(t, admin, uiWait, p.path+" shows "+p.table,
				`location.pathname === `+jsString(p.path)+` && document.querySelector(`+jsString(p.table)+`) !== null`, `location.pathname`)
		}
	})

	roToken := ""
	t.Run("ReadOnlyTokenHasNoControls", func(t *testing.T) {
		roToken = dev.policyToken(t, "ui-read", `component "" { policy = "read" }`+"\n")
		viewer := b.tab("read-only-token")
		uiSignIn(t, b, viewer, roToken, "login")
		b.open(t, viewer, "/ui/components")
		b.waitJS(t, viewer, uiWait, "the read-only token sees ticker's runs",
			`(`+uiRunsCell+`.match(/EXECUTING/g) || []).length === 2`, uiRunsCell)
		if got := uiEval[string](t, viewer, `['#deploy', '#deploy-spec', 'button.stop'].filter(s => document.querySelector(s) !== null).join(', ')`); got != "" {
			t.Errorf("the read-only token sees %s", got)
		}
	})

	t.Run("StopRefusedThroughPage", func(t *testing.T) {
		// A token that may write components, on a page that shows it the
		// stop buttons; then its policy becomes read-only, the page not
		// reloaded: the stop it attempts is refused, and the page says so.
		secret := dev.policyToken(t, "ui-demoted", `component "" { policy = "write" }`+"\n")
		writer := b.tab("demoted-token")
		uiSignIn(t, b, writer, secret, "")
		b.open(t, writer, "/ui/components")
		b.do(t, writer, "ticker's stop button for a write token", uiWait,
			chromedp.WaitVisible(chromedp.CSS(`tr[data-component="ticker"] button.stop`)))
		dev.applyPolicy(t, "ui-demoted", `component "" { policy = "read" }`+"\n")
		b.clickLive(t, writer, "click ticker's stop", `tr[data-component="ticker"] button.stop`)
		b.waitJS(t, writer, uiWait, "the refusal shown in .error",
			`Array.from(document.querySelectorAll('.error')).some(e => e.offsetParent !== null && e.textContent.trim() !== '')`,
			`Array.from(document.querySelectorAll('.error')).map(e => JSON.stringify(e.textContent)).join(', ') || '(no .error)'`)
		c, err := dev.root.Component(tctx(t, 5*time.Second), "ticker")
		if err != nil {
			t.Fatal(err)
		}
		runs, _, err := dev.root.Runs(tctx(t, 5*time.Second), "ticker", nil)
		if err != nil {
			t.Fatal(err)
		}
		executing := 0
		for _, r := range runs {
			if r.State == "EXECUTING" {
				executing++
			}
		}
		if executing != 2 {
			t.Errorf("after a refused stop ticker has %d runs EXECUTING (component %+v), want 2", executing, c)
		}
	})

	// Every page visited above: no console error, no uncaught exception, no
	// error the browser logged, no request outside the server.
	t.Run("NoConsoleErrors", func(t *testing.T) {
		for _, e := range b.consoleErrors() {
			if e.tab == "demoted-token" && e.network403 {
				continue // the refused stop, which StopRefusedThroughPage asked for
			}
			t.Errorf("console error: %s", e)
		}
	})
}
