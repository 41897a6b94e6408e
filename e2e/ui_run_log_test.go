package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// TestUIRunLog drives the run page's log (issue 18) in a real browser
// against a real `ice dev`: Show log fetches GET /v1/runs/{id}/log with the
// tab's token and shows the ticker plugin's "ticking" line in pre#log-text;
// Refresh reads it again. A token whose policy no longer lets it read the
// component, clicking Show log, gets the API's refusal in p.error and no
// log; a token that may not read the component at all sees the refusal and
// no Show log button. No console errors but those refused requests.
func TestUIRunLog(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	dev := startUIDev(t, dir)
	b := startUIBrowser(t, chromium, dev.addr, dev.caFile, dir)
	admin := b.tab("run-log-admin")
	uiSignIn(t, b, admin, dev.token, "")

	spec := filepath.Join(dir, "ticker.hcl")
	tickFile := filepath.Join(dir, "ticks")
	hcl := fmt.Sprintf("component \"ticker\" {\n  plugin = \"ticker\"\n  count  = 1\n  config = { file = %q, interval = \"500ms\" }\n}\n", tickFile)
	if err := os.WriteFile(spec, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := devCLI(t, dev.configDir, "deploy", "-f", spec); err != nil {
		t.Fatalf("ice deploy -f %s: %v\n%s", spec, err, out)
	}
	var run fsm.Run
	testcluster.WaitFor(t, 60*time.Second, "ticker's run EXECUTING", func() bool {
		runs, _, err := dev.root.Runs(tctx(t, 2*time.Second), "ticker", nil)
		if err != nil || len(runs) != 1 || runs[0].State != fsm.StateExecuting {
			return false
		}
		run = runs[0]
		return true
	})
	page := "/ui/runs/" + run.ID
	logText := `(document.querySelector('pre#log-text') || {}).textContent || ''`
	logShown := `(() => { const p = document.querySelector('pre#log-text'); return p !== null && !p.hidden && p.offsetParent !== null })()`
	status := `(document.querySelector('#log-status') || {}).textContent || ''`
	errorText := `Array.from(document.querySelectorAll('p.error')).filter(e => !e.hidden).map(e => e.textContent).join(' | ')`

	t.Run("ShowLog", func(t *testing.T) {
		b.open(t, admin, page)
		b.clickLive(t, admin, "click Show log", `button#log-show:not([hidden])`)
		b.waitJS(t, admin, uiWait, `pre#log-text shows the plugin's "ticking" line with its file`,
			logShown+` && `+logText+`.includes('ticking') && `+logText+`.includes(`+jsString(tickFile)+`)`,
			`'shown: ' + `+logShown+` + ', status: ' + JSON.stringify(`+status+`) + ', error: ' + JSON.stringify(`+errorText+`) + ', text: ' + JSON.stringify(`+logText+`.slice(-300))`)
		if !uiEval[bool](t, admin, `document.querySelector('button#log-show').hidden && !document.querySelector('button#log-refresh').hidden`) {
			t.Errorf("after the log is shown, Show log should give way to Refresh")
		}
		// What the page shows is the log the API serves.
		chunk, err := dev.root.RunLog(tctx(t, 10*time.Second), run.ID, api.LogRange{Tail: 65536})
		if err != nil {
			t.Fatal(err)
		}
		shown := uiEval[string](t, admin, logText)
		if !strings.HasPrefix(string(chunk.Data), shown) || shown == "" {
			t.Errorf("the page shows %q, which does not begin the API's log %q", tail(shown, 200), tail(string(chunk.Data), 200))
		}
		b.screenshot(t, admin, "run")
		// Refresh reads it again, keyboard first: the button takes focus.
		before := uiEval[string](t, admin, status)
		b.clickLive(t, admin, "click Refresh", `button#log-refresh:not([hidden])`)
		b.waitJS(t, admin, uiWait, "Refresh reads the log again (the status line changes) and still shows it",
			`(`+status+`) !== `+jsString(before)+` && !(`+status+`).startsWith('Reading') && `+logText+`.includes('ticking')`,
			`'status: ' + JSON.stringify(`+status+`)`)
	})

	t.Run("RefusedAfterDemotion", func(t *testing.T) {
		// A token that may read ticker opens the page and sees Show log;
		// then its policy moves to another component: the click is refused
		// by the API, and the page says so.
		policy := func(rules string) {
			t.Helper()
			if _, err := dev.root.ApplyPolicy(tctx(t, 10*time.Second), "log-reader", &api.ACLPolicyRequest{Rules: rules}); err != nil {
				t.Fatalf("apply policy log-reader: %v", err)
			}
		}
		policy(`component "ticker" { policy = "read" }`)
		tok, err := dev.root.CreateToken(tctx(t, 10*time.Second), &api.ACLTokenRequest{Name: "log-reader", Policies: []string{"log-reader"}})
		if err != nil {
			t.Fatal(err)
		}
		reader := b.tab("run-log-demoted")
		uiSignIn(t, b, reader, tok.SecretID, "")
		b.open(t, reader, page)
		b.waitJS(t, reader, uiWait, "the reader sees Show log",
			`(() => { const s = document.querySelector('button#log-show'); return s !== null && !s.hidden })()`,
			`'status: ' + JSON.stringify(`+status+`) + ', error: ' + JSON.stringify(`+errorText+`)`)
		policy(`component "other" { policy = "read" }`)
		b.clickLive(t, reader, "click Show log", `button#log-show:not([hidden])`)
		b.waitJS(t, reader, uiWait, "the refusal in p.error and #log-status, no log shown",
			`(`+errorText+`).includes('may not read component') && (`+status+`).includes('may not read component') && !`+logShown,
			`'status: ' + JSON.stringify(`+status+`) + ', error: ' + JSON.stringify(`+errorText+`) + ', shown: ' + `+logShown)
		if got := uiEval[string](t, reader, logText); strings.Contains(got, "ticking") {
			t.Errorf("the demoted token was shown the log: %q", tail(got, 200))
		}
	})

	t.Run("NoReadNoButton", func(t *testing.T) {
		tok, err := dev.root.CreateToken(tctx(t, 10*time.Second), &api.ACLTokenRequest{Name: "other-reader", Policies: []string{"log-reader"}})
		if err != nil {
			t.Fatal(err)
		}
		other := b.tab("run-log-other")
		uiSignIn(t, b, other, tok.SecretID, "")
		b.open(t, other, page)
		b.waitJS(t, other, uiWait, "the API's refusal shown in p.error",
			`(`+errorText+`).includes('may not read component')`, `'error: ' + JSON.stringify(`+errorText+`)`)
		if uiEval[bool](t, other, `(() => { const s = document.querySelector('button#log-show'); return s !== null && !s.hidden })()`) {
			t.Errorf("a token that may not read ticker is offered Show log")
		}
		if got := uiEval[string](t, other, logText); got != "" {
			t.Errorf("a token that may not read ticker was shown a log: %q", tail(got, 200))
		}
	})

	t.Run("NoConsoleErrors", func(t *testing.T) {
		for _, e := range b.consoleErrors() {
			if (e.tab == "run-log-demoted" || e.tab == "run-log-other") && e.network403 {
				continue // the refusals the subtests above asked for
			}
			t.Errorf("console error: %s", e)
		}
	})
}
