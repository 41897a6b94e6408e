package e2e

// TestUINodesComponents drives the nodes page (lease age, plugin sha256,
// eligibility and drain controls), the components list (links, rollout)
// and the component page (spec as HCL, rollout, dispatch) in a real
// browser against a real `ice dev`, as TestUI does (see ui_test.go).

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// uiNodeRow is the JavaScript of node id's row on the nodes page.
func uiNodeRow(id string) string {
	return `document.querySelector('table#nodes tr[data-node=` + jsString(id) + `]')`
}

func TestUINodesComponents(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	dev := startUIDev(t, dir)
	b := startUIBrowser(t, chromium, dev.addr, dev.caFile, dir)
	admin := b.tab("dev-token")
	uiSignIn(t, b, admin, dev.token, "")

	var node fsm.Node
	testcluster.WaitFor(t, 30*time.Second, "the dev agent's node registered with its plugins", func() bool {
		nodes, err := dev.root.Nodes(tctx(t, 5*time.Second))
		if err != nil || len(nodes) == 0 || len(nodes[0].Plugins) == 0 {
			return false
		}
		node = nodes[0]
		return true
	})
	u := &uiNC{b: b, admin: admin, dev: dev, dir: dir, node: node, row: uiNodeRow(node.ID)}
	t.Run("LeaseAgeAndPlugins", u.leaseAgeAndPlugins)
	t.Run("EligibilityAndDrainConfirm", u.eligibilityAndDrainConfirm)
	t.Run("ComponentRolloutAndHCL", u.componentRolloutAndHCL)
	t.Run("DispatchThroughPage", u.dispatchThroughPage)
	t.Run("ReadOnlyTokenHasNoControls", u.readOnlyTokenHasNoControls)
	for _, e := range b.consoleErrors() {
		t.Errorf("console error: %s", e)
	}
}

// uiNC is what the subtests of TestUINodesComponents share.
type uiNC struct {
	b     *uiBrowser
	admin context.Context
	dev   *uiDev
	dir   string
	node  fsm.Node
	row   string // the JavaScript of the node's row
}

func (u *uiNC) leaseAgeAndPlugins(t *testing.T) {
	b, admin, dev, node, row := u.b, u.admin, u.dev, u.node, u.row
	b.open(t, admin, "/ui/nodes")
	lease := `(` + row + ` || document).querySelector('td.lease')`
	b.waitJS(t, admin, uiWait, "node "+node.ID+"'s lease cell says renewed ... ago (TTL ...)",
		lease+` !== null && /renewed [0-9.]+ s ago \(TTL [0-9.]+ s\)/.test(`+lease+`.textContent)`,
		`(`+lease+` || {textContent: '(no td.lease)'}).textContent`)
	// The age grows between renewals and drops at one: record each age
	// shown, until one is younger than the one before.
	b.waitJS(t, admin, 4*uiWait, "a lease renewal shows a younger age than the one before",
		`(() => { const c = `+lease+`; if (c === null || !c.dataset.ageMs) return false; const a = Number(c.dataset.ageMs);
		const w = window.__iceAges = window.__iceAges || []; if (w[w.length - 1] !== a) w.push(a);
		return w.some((x, i) => i > 0 && x < w[i - 1]) })()`,
		`JSON.stringify(window.__iceAges || [])`)
	ttl := uiEval[string](t, admin, lease+`.dataset.ttlMs`)
	ls, err := dev.root.NodeLeases(tctx(t, 5*time.Second))
	if err != nil || len(ls.Leases) == 0 {
		t.Fatalf("GET /v1/nodes/leases: %+v %v", ls, err)
	}
	if want := ls.Leases[0].TTLMillis; ttl == "" || ttl != strconv.FormatInt(want, 10) {
		t.Errorf("the page shows a TTL of %s ms, GET /v1/nodes/leases %d ms", ttl, want)
	}
	for _, p := range node.Plugins {
		full := `(` + row + `.querySelector('li[data-plugin=` + jsString(p.Name) + `] code.sha256-full') || {textContent: ''}).textContent`
		if got := uiEval[string](t, admin, full); got != p.SHA256 || len(got) != 64 {
			t.Errorf("plugin %s: the page's full sha256 is %q, GET /v1/nodes says %q", p.Name, got, p.SHA256)
		}
	}
}

func (u *uiNC) eligibilityAndDrainConfirm(t *testing.T) {
	b, admin, dev, node, row := u.b, u.admin, u.dev, u.node, u.row
	status := func(want fsm.NodeStatus) func() bool {
		return func() bool {
			nodes, err := dev.root.Nodes(tctx(t, 5*time.Second))
			return err == nil && len(nodes) > 0 && nodes[0].Status == want
		}
	}
	b.clickLive(t, admin, "click Mark ineligible", `tr[data-node=`+jsString(node.ID)+`] button.eligibility[data-eligible="false"]`)
	testcluster.WaitFor(t, uiWait, "GET /v1/nodes reports "+node.ID+" ineligible", status(fsm.NodeIneligible))
	b.waitJS(t, admin, uiWait, "the row shows ineligible and a Mark eligible button",
		row+` !== null && `+row+`.querySelector('td.status').textContent.startsWith('ineligible') && `+row+`.querySelector('button.eligibility[data-eligible="true"]') !== null`,
		`(`+row+` || {textContent: '(no row)'}).textContent`)
	b.clickLive(t, admin, "click Mark eligible", `tr[data-node=`+jsString(node.ID)+`] button.eligibility[data-eligible="true"]`)
	testcluster.WaitFor(t, uiWait, "GET /v1/nodes reports "+node.ID+" ready", status(fsm.NodeReady))
	b.waitJS(t, admin, uiWait, "the row shows ready again", row+` !== null && `+row+`.querySelector('td.status').textContent.startsWith('ready')`,
		`(`+row+` || {textContent: '(no row)'}).textContent`)
	// Drain asks for a second click; Cancel leaves the node as it is.
	b.clickLive(t, admin, "click Drain once", `tr[data-node=`+jsString(node.ID)+`] button.drain`)
	b.waitJS(t, admin, uiWait, "Drain asks to confirm", row+`.querySelector('button.drain.confirming') !== null && `+row+`.querySelector('button.drain-cancel') !== null`,
		row+`.querySelector('td.node-actions').textContent`)
	b.screenshot(t, admin, "nodes")
	b.clickLive(t, admin, "click Cancel", `tr[data-node=`+jsString(node.ID)+`] button.drain-cancel`)
	b.waitJS(t, admin, uiWait, "Drain is back to one button", row+`.querySelector('button.drain:not(.confirming)') !== null`,
		row+`.querySelector('td.node-actions').textContent`)
	if !status(fsm.NodeReady)() {
		t.Errorf("a cancelled drain changed the node's status")
	}
}

func (u *uiNC) componentRolloutAndHCL(t *testing.T) {
	b, admin, dev := u.b, u.admin, u.dev
	if out, err := devCLI(t, dev.configDir, "deploy", "-f", filepath.Join("..", "examples", "ticker.hcl")); err != nil {
		t.Fatalf("ice deploy -f examples/ticker.hcl: %v\n%s", err, out)
	}
	b.open(t, admin, "/ui/components")
	cell := `document.querySelector('tr[data-component="ticker"] td.rollout')`
	b.waitJS(t, admin, 30*time.Second, "ticker's rollout says 2/2 updated",
		cell+` !== null && `+cell+`.textContent.includes('2/2 updated')`, `(`+cell+` || {textContent: '(no td.rollout)'}).textContent`)
	b.waitJS(t, admin, 30*time.Second, "both of ticker's runs EXECUTING on the components page",
		`document.querySelectorAll('tr[data-component="ticker"] .runs li[data-state="EXECUTING"]').length === 2`,
		`document.querySelector('tr[data-component="ticker"] .runs').textContent`)
	b.screenshot(t, admin, "components")
	b.clickLive(t, admin, "follow ticker's name", `tr[data-component="ticker"] a.component`)
	b.waitJS(t, admin, uiWait, "on /ui/components/ticker", `location.pathname === '/ui/components/ticker'`, `location.pathname`)
	hcl := `(document.querySelector('#component-hcl') || {textContent: ''}).textContent`
	b.waitJS(t, admin, uiWait, "the spec as HCL names plugin ticker",
		`/component "ticker"/.test(`+hcl+`) && /plugin\s*=\s*"ticker"/.test(`+hcl+`)`, hcl)
	b.waitJS(t, admin, uiWait, "the component page's rollout says 2/2 updated and lists two runs",
		`(document.querySelector('#component-rollout') || {textContent: ''}).textContent.includes('2/2 updated') && document.querySelectorAll('#component-runs tr[data-run] a.run').length === 2`,
		`document.querySelector('#component-rollout').textContent + ', ' + document.querySelectorAll('#component-runs tr[data-run]').length + ' runs'`)
	b.waitJS(t, admin, 30*time.Second, "both of ticker's runs EXECUTING on the component page",
		`document.querySelectorAll('#component-runs tr[data-state="EXECUTING"]').length === 2`,
		`Array.from(document.querySelectorAll('#component-runs tr[data-run]')).map(r => r.dataset.state).join(',')`)
	// The HCL shown is what the API answers, and deploys the same spec.
	shown := uiEval[string](t, admin, hcl)
	sp, err := api.ParseSpecFile("ticker.hcl", []byte(shown))
	if err != nil {
		t.Fatalf("the page's HCL does not parse: %v\n%s", err, shown)
	}
	if sp.Count == nil || *sp.Count != 2 || sp.Config["interval"] != "1s" {
		t.Errorf("the page's HCL is not ticker's spec: %+v", sp)
	}
	b.screenshot(t, admin, "component")
}

func (u *uiNC) dispatchThroughPage(t *testing.T) {
	b, admin, dev := u.b, u.admin, u.dev
	if out, err := devCLI(t, dev.configDir, "deploy", "-f", filepath.Join("..", "examples", "extract.hcl")); err != nil {
		t.Fatalf("ice deploy -f examples/extract.hcl: %v\n%s", err, out)
	}
	b.open(t, admin, "/ui/components")
	b.clickLive(t, admin, "follow extract's Dispatch link", `tr[data-component="extract"] a.dispatch-link`)
	b.do(t, admin, "the dispatch form", uiWait, chromedp.WaitVisible(chromedp.CSS(`#dispatch-form textarea#dispatch-input`)))
	b.do(t, admin, "fill and send the dispatch form", uiWait,
		chromedp.SendKeys(chromedp.CSS(`#dispatch-input`), "one two three"),
		chromedp.SendKeys(chromedp.CSS(`#dispatch-meta`), "doc=ui-test"),
		chromedp.Click(chromedp.CSS(`#dispatch-submit`)))
	link := `document.querySelector('#dispatch-result a.run')`
	b.waitJS(t, admin, uiWait, "the new run's link", link+` !== null`,
		`(document.querySelector('#dispatch-result') || {textContent: '(none)'}).textContent + ' / ' + (document.querySelector('p.error') || {}).textContent`)
	id := uiEval[string](t, admin, link+`.textContent`)
	if href := uiEval[string](t, admin, `new URL(`+link+`.href).pathname`); href != "/ui/runs/"+id {
		t.Errorf("the run link goes to %s, want /ui/runs/%s", href, id)
	}
	runs, _, err := dev.root.Runs(tctx(t, 5*time.Second), "extract", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range runs {
		if r.ID == id {
			found = r.Dispatch && r.Meta["doc"] == "ui-test" && r.Input == "one two three"
			if !found {
				t.Errorf("run %s: %+v, want the dispatch's input and meta", id, r)
			}
		}
	}
	if !found && !t.Failed() {
		t.Errorf("GET /v1/runs?component=extract has no run %s: %+v", id, runs)
	}
}

func (u *uiNC) readOnlyTokenHasNoControls(t *testing.T) {
	b, dev, row := u.b, u.dev, u.row
	secret := dev.policyToken(t, "ui-read", "component \"\" { policy = \"read\" }\nnode \"\" { policy = \"read\" }\n")
	viewer := b.tab("read-only-token")
	uiSignIn(t, b, viewer, secret, "")
	b.open(t, viewer, "/ui/nodes")
	b.waitJS(t, viewer, uiWait, "the read-only token sees the node's lease",
		row+` !== null && /renewed/.test(`+row+`.querySelector('td.lease').textContent)`, `(`+row+` || {textContent: '(no row)'}).textContent`)
	if got := uiEval[string](t, viewer, `['button.drain', 'button.eligibility'].filter(s => document.querySelector(s) !== null).join(', ')`); got != "" {
		t.Errorf("the read-only token sees %s on the nodes page", got)
	}
	b.open(t, viewer, "/ui/components")
	b.waitJS(t, viewer, uiWait, "the read-only token sees extract's row",
		`document.querySelector('tr[data-component="extract"] a.component') !== null`, `document.querySelector('table#components').textContent`)
	if got := uiEval[string](t, viewer, `['a.dispatch-link', 'button.stop', '#deploy'].filter(s => document.querySelector(s) !== null).join(', ')`); got != "" {
		t.Errorf("the read-only token sees %s on the components page", got)
	}
	b.open(t, viewer, "/ui/components/extract")
	b.waitJS(t, viewer, uiWait, "the read-only token sees extract's spec",
		`/component "extract"/.test((document.querySelector('#component-hcl') || {textContent: ''}).textContent) && document.querySelector('#component-actions[data-asked]') !== null`,
		`(document.querySelector('#component-hcl') || {textContent: ''}).textContent`)
	if got := uiEval[string](t, viewer, `['#dispatch-form', '#dispatch-submit', 'button.stop'].filter(s => document.querySelector(s) !== null).join(', ')`); got != "" {
		t.Errorf("the read-only token sees %s on the component page", got)
	}
}
