package e2e

// TestUICluster drives the cluster page of the web UI (issue 18) in a real
// browser against a real `ice dev`: the leader changes come from the
// server (they survive a reload), the commit latency and batch size charts
// draw what /metrics reports while the test writes, and every page reads at
// a phone's width (390x844) without scrolling sideways.

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ice-run/ice/api"
)

// uiPhoneWidth and uiPhoneHeight are a phone's viewport.
const uiPhoneWidth, uiPhoneHeight = 390, 844

// uiChartWait bounds the wait for the charts: the page samples /metrics
// every 5 s and a point needs two samples with commits between them.
const uiChartWait = 90 * time.Second

func TestUICluster(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	dev := startUIDev(t, dir)
	b := startUIBrowser(t, chromium, dev.addr, dev.caFile, dir)

	// The phone tab sees the login page before it signs in.
	phone := b.tab("phone")
	b.do(t, phone, "phone viewport", uiWait, chromedp.EmulateViewport(uiPhoneWidth, uiPhoneHeight))
	b.open(t, phone, "/ui/login")
	b.do(t, phone, "login form at phone width", uiWait, chromedp.WaitVisible(chromedp.CSS(`button#signin`)))
	checkPhoneWidth(t, b, phone, "/ui/login", false)

	admin := b.tab("cluster-admin")
	uiSignIn(t, b, admin, dev.token, "")
	if out, err := devCLI(t, dev.configDir, "deploy", "-f", filepath.Join("..", "examples", "ticker.hcl")); err != nil {
		t.Fatalf("ice deploy -f examples/ticker.hcl: %v\n%s", err, out)
	}

	t.Run("LeaderChangesFromServer", func(t *testing.T) {
		st, err := dev.root.Status(tctx(t, 5*time.Second))
		if err != nil {
			t.Fatalf("GET /v1/status: %v", err)
		}
		li := `document.querySelector('ol#leader-changes li.leader-change[data-term="` + strconv.FormatUint(st.Term, 10) + `"][data-leader="` + st.Leader + `"]')`
		show := `Array.from(document.querySelectorAll('ol#leader-changes li')).map(l => l.textContent).join(' | ') || '(no li)'`
		what := fmt.Sprintf("ol#leader-changes lists term %d leader %s", st.Term, st.Leader)
		b.open(t, admin, "/ui/cluster")
		b.waitJS(t, admin, uiWait, what, li+` !== null`, show)
		// A reload starts the page afresh: the list is the server's.
		uiEval[bool](t, admin, `(window.__iceBeforeReload = true)`)
		b.do(t, admin, "reload /ui/cluster", uiWait, chromedp.Reload())
		b.waitJS(t, admin, uiWait, what+" after a reload", `window.__iceBeforeReload !== true && `+li+` !== null`, show)
		if got := uiEval[string](t, admin, li+`.querySelector('.at').textContent.trim()`); got == "" {
			t.Errorf("the leader change of term %d shows no time", st.Term)
		}
		// The server saw the change before this page was loaded: the tab
		// did not make it up.
		if !uiEval[bool](t, admin, `Number(`+li+`.dataset.at) / 1e6 < performance.timeOrigin`) {
			t.Errorf("the leader change of term %d is dated %s, not before the page loaded at %v ms", st.Term,
				uiEval[string](t, admin, li+`.dataset.at`), uiEval[float64](t, admin, `performance.timeOrigin`))
		}
		if by := uiEval[string](t, admin, `document.querySelector('#leaders-by').textContent`); by != "server "+st.NodeID {
			t.Errorf("#leaders-by says %q, want %q", by, "server "+st.NodeID)
		}
	})

	t.Run("CommitCharts", func(t *testing.T) {
		b.open(t, admin, "/ui/cluster")
		// Writes while the page samples: each applies a policy, a command
		// through the group commit.
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- writePolicies(ctx, dev.root) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("writes for the charts: %v", err)
			}
		}()
		for _, id := range []string{"chart-latency", "chart-batch"} {
			fig := `document.getElementById('` + id + `')`
			b.waitJS(t, admin, uiChartWait, "#"+id+" draws at least two points",
				`Number(`+fig+`.dataset.points) >= 2 && Number((`+fig+`.querySelector('svg polyline.mean') || {dataset: {}}).dataset.points) >= 2`,
				`'data-points ' + `+fig+`.dataset.points + ', caption ' + JSON.stringify(`+fig+`.querySelector('figcaption').textContent) + ', p.error ' + JSON.stringify(document.querySelector('p.error').textContent)`)
			label := uiEval[string](t, admin, fig+`.querySelector('svg').getAttribute('aria-label') || ''`)
			value := uiEval[string](t, admin, fig+`.querySelector('.chart-value').textContent`)
			if label == "" || value == "" || !containsAll(value, "latest") {
				t.Errorf("#%s has aria-label %q and value %q; want both with the latest figures", id, label, value)
			}
			t.Logf("#%s: %s", id, value)
		}
		if n := uiEval[int](t, admin, `Number((document.querySelector('#chart-latency svg polyline.p99') || {dataset: {}}).dataset.points || 0)`); n < 1 {
			t.Errorf("#chart-latency draws no p99 point")
		}
		b.screenshot(t, admin, "cluster")
	})

	t.Run("PhoneWidth", func(t *testing.T) {
		uiSignIn(t, b, phone, dev.token, "")
		runs, _, err := dev.root.Runs(tctx(t, 5*time.Second), "ticker", nil)
		if err != nil || len(runs) == 0 {
			t.Fatalf("ticker's runs: %v %v", runs, err)
		}
		for _, p := range []struct{ path, ready string }{
			{"/ui/cluster", `table#servers tr[data-server]`},
			{"/ui/nodes", `table#nodes tr[data-node]`},
			{"/ui/components", `tr[data-component="ticker"]`},
			{"/ui/components/ticker", `#component-runs tr[data-run]`},
			{"/ui/events", `table#events tr.event`},
			{"/ui/grants", `table#grants`},
			{"/ui/memory", `table#memory`},
			{"/ui/runs/" + runs[0].ID, `ol#timeline li.transition`},
		} {
			b.open(t, phone, p.path)
			b.waitJS(t, phone, uiWait, p.path+" shows "+p.ready,
				`location.pathname === `+jsString(p.path)+` && document.querySelector(`+jsString(p.ready)+`) !== null`, `location.pathname`)
			checkPhoneWidth(t, b, phone, p.path, true)
		}
	})

	t.Run("NoConsoleErrors", func(t *testing.T) {
		for _, e := range b.consoleErrors() {
			t.Errorf("console error: %s", e)
		}
	})
}

// checkPhoneWidth checks that the page in tab does not scroll sideways and,
// when nav, that every nav link is visible and on screen.
func checkPhoneWidth(t *testing.T, b *uiBrowser, tab context.Context, path string, nav bool) {
	t.Helper()
	if w := uiEval[int](t, tab, `window.innerWidth`); w != uiPhoneWidth {
		t.Fatalf("%s: window.innerWidth is %d, want %d", path, w, uiPhoneWidth)
	}
	// The page may still be filling in: give it a moment to settle, and
	// name the elements past the right edge when it does not.
	b.checkJS(t, tab, 5*time.Second, path+": no horizontal page scroll at 390 px",
		`document.documentElement.scrollWidth <= window.innerWidth`,
		`'scrollWidth ' + document.documentElement.scrollWidth + ' > innerWidth ' + window.innerWidth + '; past the edge: ' + `+
			`Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest('.scroll')).slice(0, 8).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') + ' (' + Math.round(e.getBoundingClientRect().right) + ')').join(', ')`)
	if !nav {
		return
	}
	b.checkJS(t, tab, 5*time.Second, path+": every nav link visible at 390 px",
		`(() => { const links = Array.from(document.querySelectorAll('nav a[id^="nav-"]')); return links.length === 6 && links.every(a => { const r = a.getBoundingClientRect(); return a.offsetParent !== null && r.width > 0 && r.left >= 0 && r.right <= window.innerWidth && getComputedStyle(a).visibility !== 'hidden' }) })()`,
		`Array.from(document.querySelectorAll('nav a[id^="nav-"]')).map(a => { const r = a.getBoundingClientRect(); return a.id + ' ' + Math.round(r.left) + '..' + Math.round(r.right) + (a.offsetParent === null ? ' hidden' : '') }).join(', ') || '(no nav links)'`)
}

// writePolicies applies an ACL policy every half second until ctx ends:
// commands for the group commit that change nothing else.
func writePolicies(ctx context.Context, c *api.Client) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.ApplyPolicy(wctx, "ui-cluster-charts", &api.ACLPolicyRequest{
			Rules: `component "" { policy = "read" }`, Description: fmt.Sprintf("write %d for the cluster page's charts", i)})
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("apply policy ui-cluster-charts (write %d): %w", i, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
