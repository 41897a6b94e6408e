package e2e

// TestUIMemoryGrants drives the Memory, Memory record and Grants pages of
// the web UI (issue 18) in a real browser against a real `ice dev` (see
// ui_test.go for the harness). Memory comes from the real flow: the
// examples extract (dispatched per document) and summarize (which reads the
// facts, so its record's lineage names them). Grants come from the payout
// plugin (an irreversible capability, PENDING until approved) and fetch (an
// external one, GRANTED at once). Approving and denying is done by a second
// token, not the deployer's: a deployer may approve its own component's
// irreversible grants only with a management token.
//
//	go test -count=1 -run 'TestUIMemoryGrants' ./e2e [-ui.screenshots]

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/testcluster"
)

// uiRows is JavaScript listing the data-ATTR values of the rows of a table
// (for failure messages).
func uiRows(table, attr string) string {
	return `Array.from(document.querySelectorAll('table#` + table + ` tbody tr')).map(r => r.getAttribute('data-` + attr + `') + ' ' + r.getAttribute('data-status')).join(', ') || '(no rows)'`
}

// uiDispatchWait dispatches a run of component and waits until it is
// TERMINATED COMMITTED.
func uiDispatchWait(t *testing.T, dev *uiDev, component, input string, meta map[string]string) string {
	t.Helper()
	res, err := dev.root.Dispatch(tctx(t, 10*time.Second), component, &api.DispatchRequest{Input: input, Meta: meta}, nil)
	if err != nil {
		t.Fatalf("dispatch %s: %v", component, err)
	}
	var run *fsm.Run
	testcluster.WaitFor(t, 60*time.Second, "run "+res.Run+" of "+component+" TERMINATED", func() bool {
		r, _, err := dev.root.RunWait(tctx(t, 5*time.Second), res.Run, nil)
		run = r
		return err == nil && r.State == fsm.StateTerminated
	})
	if run.Outcome != fsm.StateCommitted {
		t.Fatalf("run %s of %s ended %s: %s", run.ID, component, run.Outcome, run.Reason)
	}
	return run.ID
}

// uiGrant waits for a grant of component that cond accepts.
func uiGrant(t *testing.T, dev *uiDev, component, what string, cond func(fsm.Grant) bool) fsm.Grant {
	t.Helper()
	var found fsm.Grant
	testcluster.WaitFor(t, 60*time.Second, what, func() bool {
		gs, err := dev.root.Grants(tctx(t, 5*time.Second), api.GrantQuery{Component: component})
		if err != nil {
			return false
		}
		for _, g := range gs {
			if cond(g) {
				found = g
				return true
			}
		}
		return false
	})
	return found
}

// uiRecord waits until version v of type/key is in the state with the
// status that cond accepts, and returns it.
func uiRecord(t *testing.T, dev *uiDev, typ, key string, v uint64, what string, cond func(fsm.MemoryRecord) bool) fsm.MemoryRecord {
	t.Helper()
	var found fsm.MemoryRecord
	testcluster.WaitFor(t, 30*time.Second, what, func() bool {
		recs, err := dev.root.MemoryHistory(tctx(t, 5*time.Second), typ, key)
		if err != nil {
			return false
		}
		for _, m := range recs {
			if m.Version == v && cond(m) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// uiType types text into the input sel and waits until it holds it.
func uiType(t *testing.T, b *uiBrowser, tab context.Context, sel, text string) {
	t.Helper()
	b.do(t, tab, "type into "+sel, uiWait, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
	b.waitJS(t, tab, uiWait, sel+" holds "+jsString(text),
		`(document.querySelector(`+jsString(sel)+`) || {}).value === `+jsString(text),
		`JSON.stringify((document.querySelector(`+jsString(sel)+`) || {value: '(no element)'}).value)`)
}

// uiMemoryRuns are the runs that made the records of the test.
type uiMemoryRuns struct{ factA1, factA2, factB, summary string }

// uiMakeMemory deploys the examples extract and summarize and dispatches
// them: fact/doc-a@1 and fact/doc-b@1, summary/all@1 read from both, then
// fact/doc-a@2 (so @1 is SUPERSEDED).
func uiMakeMemory(t *testing.T, dev *uiDev) uiMemoryRuns {
	t.Helper()
	for _, ex := range []string{"extract.hcl", "summarize.hcl"} {
		if out, err := devCLI(t, dev.configDir, "deploy", "-f", filepath.Join("..", "examples", ex)); err != nil {
			t.Fatalf("ice deploy -f examples/%s: %v\n%s", ex, err, out)
		}
	}
	var r uiMemoryRuns
	r.factA1 = uiDispatchWait(t, dev, "extract", "document a says three things", map[string]string{"doc": "a"})
	r.factB = uiDispatchWait(t, dev, "extract", "document b says two", map[string]string{"doc": "b"})
	r.summary = uiDispatchWait(t, dev, "summarize", "", nil)
	r.factA2 = uiDispatchWait(t, dev, "extract", "document a now says four things", map[string]string{"doc": "a"})
	sum := uiRecord(t, dev, "summary", "all", 1, "summary/all@1", func(m fsm.MemoryRecord) bool { return true })
	if len(sum.Inputs) != 2 {
		t.Fatalf("summary/all@1 has inputs %v, want fact/doc-a@1 and fact/doc-b@1", sum.Inputs)
	}
	uiRecord(t, dev, "fact", "doc-a", 1, "fact/doc-a@1 SUPERSEDED", func(m fsm.MemoryRecord) bool { return m.Status == fsm.MemorySuperseded })
	return r
}

func TestUIMemoryGrants(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	dev := startUIDev(t, dir)
	b := startUIBrowser(t, chromium, dev.addr, dev.caFile, dir)
	admin := b.tab("dev-token")
	uiSignIn(t, b, admin, dev.token, "")
	runs := uiMakeMemory(t, dev)

	if !t.Run("MemoryPage", func(t *testing.T) { uiCheckMemoryPage(t, b, admin, runs) }) {
		return
	}
	if !t.Run("RecordPage", func(t *testing.T) { uiCheckRecordPage(t, b, admin, runs) }) {
		return
	}
	t.Run("RecordPageAtPhoneWidth", func(t *testing.T) {
		phone := b.tab("phone")
		b.do(t, phone, "phone viewport", uiWait, chromedp.EmulateViewport(uiPhoneWidth, uiPhoneHeight))
		uiSignIn(t, b, phone, dev.token, "")
		b.open(t, phone, "/ui/memory/summary/all")
		b.waitJS(t, phone, uiWait, "summary/all's versions and lineage", `document.querySelector('table#versions tr[data-version="1"]') !== null && document.querySelector('ul#lineage-inputs > li') !== null`, `location.pathname`)
		checkPhoneWidth(t, b, phone, "/ui/memory/summary/all", true)
	})
	t.Run("InvalidateThroughMemoryPage", func(t *testing.T) { uiInvalidateThroughPage(t, b, admin, dev) })
	t.Run("DeprecateThroughRecordPage", func(t *testing.T) { uiDeprecateThroughPage(t, b, admin, dev) })

	grants := uiMakeGrants(t, dev, dir)
	approver := b.tab("approver-token")
	uiSignIn(t, b, approver, dev.policyToken(t, "ui-approver", `capability "payments:" { policy = "write" }
component "" { policy = "read" }`), "")
	t.Run("GrantsPage", func(t *testing.T) { uiCheckGrantsPage(t, b, approver, grants) })
	t.Run("ReadOnlyTokenHasNoControls", func(t *testing.T) { uiReadOnly(t, b, dev, grants) })
	t.Run("ApproveAndDenyThroughPage", func(t *testing.T) { uiDecideThroughPage(t, b, approver, dev, grants) })
	t.Run("RevokeThroughPage", func(t *testing.T) { uiRevokeThroughPage(t, b, admin, dev, grants) })
	t.Run("SelfApprovalRefusedThroughPage", func(t *testing.T) { uiSelfApproval(t, b, dev, dir) })

	t.Run("NoConsoleErrors", func(t *testing.T) {
		for _, e := range b.consoleErrors() {
			if e.tab == "deployer-token" && e.network403 {
				continue // the refused self-approval, which SelfApprovalRefusedThroughPage asked for
			}
			t.Errorf("console error: %s", e)
		}
	})
}

func uiCheckMemoryPage(t *testing.T, b *uiBrowser, tab context.Context, runs uiMemoryRuns) {
	b.do(t, tab, "follow a#nav-memory", uiWait, chromedp.Click(chromedp.CSS(`a#nav-memory`)))
	want := map[string]string{"fact/doc-a@1": "SUPERSEDED", "fact/doc-a@2": "ACTIVE", "fact/doc-b@1": "ACTIVE", "summary/all@1": "ACTIVE"}
	for ref, status := range want {
		row := `document.querySelector('table#memory tr[data-record=` + jsString(ref) + `]')`
		b.waitJS(t, tab, uiWait, "the memory page lists "+ref+" "+status+" linking its record page",
			row+` !== null && `+row+`.dataset.status === `+jsString(status)+` && new URL(`+row+`.querySelector('a.record').href).pathname === `+
				jsString("/ui/memory/"+strings.Split(ref, "@")[0]),
			uiRows("memory", "record"))
	}
	runOf := `(ref) => new URL(document.querySelector('table#memory tr[data-record="' + ref + '"] a.run').href).pathname`
	for ref, run := range map[string]string{"fact/doc-a@1": runs.factA1, "summary/all@1": runs.summary} {
		if got := uiEval[string](t, tab, `(`+runOf+`)(`+jsString(ref)+`)`); got != "/ui/runs/"+run {
			t.Errorf("%s's run link goes to %s, want /ui/runs/%s", ref, got, run)
		}
	}
	// The dev token may write memory: each not-INVALIDATED record has
	// invalidate, each ACTIVE one deprecate.
	if n := uiEval[int](t, tab, `document.querySelectorAll('table#memory button.invalidate').length`); n != 4 {
		t.Errorf("%d button.invalidate for the dev token, want 4", n)
	}
	if n := uiEval[int](t, tab, `document.querySelectorAll('table#memory button.deprecate').length`); n != 3 {
		t.Errorf("%d button.deprecate for the dev token, want 3 (the ACTIVE records)", n)
	}
	b.screenshot(t, tab, "memory")
	// The type filter asks the API for summaries only; the status filter
	// for SUPERSEDED only.
	uiType(t, b, tab, `input#filter-type`, "summary")
	b.do(t, tab, "apply the filter", uiWait, chromedp.Click(chromedp.CSS(`button#filter-apply`)))
	b.waitJS(t, tab, uiWait, "filtered to type summary: summary/all@1 only",
		`location.search === '?type=summary' && `+uiRows("memory", "record")+` === 'summary/all@1 ACTIVE'`, uiRows("memory", "record"))
	b.open(t, tab, "/ui/memory?status=superseded")
	b.waitJS(t, tab, uiWait, "/ui/memory?status=superseded lists fact/doc-a@1 only",
		`document.querySelector('#filter-status').value === 'SUPERSEDED' && `+uiRows("memory", "record")+` === 'fact/doc-a@1 SUPERSEDED'`, uiRows("memory", "record"))
}

func uiCheckRecordPage(t *testing.T, b *uiBrowser, tab context.Context, runs uiMemoryRuns) {
	b.open(t, tab, "/ui/memory")
	b.clickLive(t, tab, "follow summary/all@1's a.record", `table#memory tr[data-record="summary/all@1"] a.record`)
	b.waitJS(t, tab, uiWait, "on summary/all's record page with version 1 ACTIVE by run "+runs.summary,
		`location.pathname === '/ui/memory/summary/all' && (() => { const r = document.querySelector('table#versions tr[data-version="1"]'); return r !== null && r.dataset.status === 'ACTIVE' && new URL(r.querySelector('a.run').href).pathname === `+jsString("/ui/runs/"+runs.summary)+` })()`,
		`location.pathname + ': ' + `+uiRows("versions", "version"))
	for ref, run := range map[string]string{"fact/doc-a@1": runs.factA1, "fact/doc-b@1": runs.factB} {
		li := `document.querySelector('ul#lineage-inputs > li[data-ref=` + jsString(ref) + `]')`
		b.waitJS(t, tab, uiWait, "the lineage's inputs list "+ref+" with links to its record page and run "+run,
			li+` !== null && new URL(`+li+`.querySelector('a.record').href).pathname === `+jsString("/ui/memory/"+strings.Split(ref, "@")[0])+
				` && new URL(`+li+`.querySelector('a.run').href).pathname === `+jsString("/ui/runs/"+run),
			`document.querySelector('ul#lineage-inputs').outerHTML.slice(0, 800)`)
	}
	b.screenshot(t, tab, "record")
	// fact/doc-a: both versions, newest first; the lineage of version 1
	// (what the summary read) lists summary/all@1 as derived from it.
	b.clickLive(t, tab, "follow the input fact/doc-a@1", `ul#lineage-inputs > li[data-ref="fact/doc-a@1"] > a.record`)
	b.waitJS(t, tab, uiWait, "fact/doc-a's page lists versions 2 ACTIVE and 1 SUPERSEDED",
		`location.pathname === '/ui/memory/fact/doc-a' && `+uiRows("versions", "version")+` === '2 ACTIVE, 1 SUPERSEDED'`, uiRows("versions", "version"))
	b.waitJS(t, tab, uiWait, "the lineage of fact/doc-a@1 lists summary/all@1 as derived from it",
		`document.querySelector('#lineage').dataset.version === '1' && document.querySelector('ul#lineage-derived > li[data-ref="summary/all@1"] a.record') !== null`,
		`document.querySelector('#lineage').dataset.version + ': ' + document.querySelector('ul#lineage-derived').outerHTML.slice(0, 800)`)
	// Choosing version 2 in the select shows its lineage: nothing read it.
	b.do(t, tab, "choose version 2", uiWait, chromedp.SetValue(chromedp.CSS(`select#lineage-version`), "2"))
	uiEval[bool](t, tab, `document.querySelector('select#lineage-version').dispatchEvent(new Event('change')) || true`)
	b.waitJS(t, tab, uiWait, "the lineage of fact/doc-a@2: derived from nothing, read by nothing",
		`document.querySelector('#lineage').dataset.version === '2' && location.search === '?version=2' && document.querySelector('ul#lineage-derived li.none') !== null && document.querySelector('ul#lineage-inputs li.none') !== null`,
		`document.querySelector('#lineage').dataset.version + ' ' + location.search`)
}

func uiInvalidateThroughPage(t *testing.T, b *uiBrowser, tab context.Context, dev *uiDev) {
	const reason = "ui: doc b was misread"
	b.open(t, tab, "/ui/memory")
	row := `table#memory tr[data-record="fact/doc-b@1"]`
	b.waitJS(t, tab, uiWait, "fact/doc-b@1 with its reason input", `document.querySelector(`+jsString(row+` input.reason`)+`) !== null`, uiRows("memory", "record"))
	id := uiEval[string](t, tab, `document.querySelector(`+jsString(row+` input.reason`)+`).id`)
	uiType(t, b, tab, "#"+id, reason)
	b.clickLive(t, tab, "click fact/doc-b@1's Invalidate", row+` button.invalidate`)
	b.waitJS(t, tab, uiWait, "the page says what was invalidated (the fact and the summary read from it)",
		`(document.querySelector('#memory-result') || {}).textContent.includes('fact/doc-b@1, summary/all@1')`,
		`document.querySelector('#memory-result').textContent + ' | ' + document.querySelector('p.error').textContent`)
	m := uiRecord(t, dev, "fact", "doc-b", 1, "GET /v1/memory/fact/doc-b: version 1 INVALIDATED", func(m fsm.MemoryRecord) bool { return m.Status == fsm.MemoryInvalidated })
	if m.Reason != reason {
		t.Errorf("fact/doc-b@1 INVALIDATED with reason %q, want %q", m.Reason, reason)
	}
	s := uiRecord(t, dev, "summary", "all", 1, "summary/all@1 INVALIDATED", func(m fsm.MemoryRecord) bool { return m.Status == fsm.MemoryInvalidated })
	if s.Reason != "derived from fact/doc-b@1" {
		t.Errorf("summary/all@1 INVALIDATED with reason %q, want derived from fact/doc-b@1", s.Reason)
	}
	b.waitJS(t, tab, uiWait, "the page shows both INVALIDATED, without their buttons",
		`['fact/doc-b@1', 'summary/all@1'].every(r => { const e = document.querySelector('table#memory tr[data-record="' + r + '"]'); return e && e.dataset.status === 'INVALIDATED' && e.querySelector('button') === null })`,
		uiRows("memory", "record"))
}

func uiDeprecateThroughPage(t *testing.T, b *uiBrowser, tab context.Context, dev *uiDev) {
	const reason = "ui: superseded by a new extraction"
	b.open(t, tab, "/ui/memory/fact/doc-a")
	b.waitJS(t, tab, uiWait, "fact/doc-a@2 ACTIVE with deprecate", `document.querySelector('table#versions tr[data-version="2"] button.deprecate') !== null`, uiRows("versions", "version"))
	if n := uiEval[int](t, tab, `document.querySelectorAll('table#versions tr[data-version="1"] button.deprecate').length`); n != 0 {
		t.Errorf("the SUPERSEDED version 1 has %d deprecate buttons, want none", n)
	}
	uiType(t, b, tab, `input#reason-v2`, reason)
	b.clickLive(t, tab, "click version 2's Deprecate", `table#versions tr[data-version="2"] button.deprecate`)
	m := uiRecord(t, dev, "fact", "doc-a", 2, "fact/doc-a@2 DEPRECATED", func(m fsm.MemoryRecord) bool { return m.Status == fsm.MemoryDeprecated })
	if m.Reason != reason {
		t.Errorf("fact/doc-a@2 DEPRECATED with reason %q, want %q", m.Reason, reason)
	}
	b.waitJS(t, tab, uiWait, "the record page shows version 2 DEPRECATED", `document.querySelector('table#versions tr[data-version="2"]').dataset.status === 'DEPRECATED'`, uiRows("versions", "version"))
}

// uiGrants are the grants of the test: payout's and payout2's PENDING,
// fetch's GRANTED.
type uiGrants struct{ approve, deny, revoke fsm.Grant }

// uiMakeGrants deploys, with the dev token, two payouts (an irreversible
// capability, one approval) and fetch (an external one, granted at once;
// it calls a port nothing listens on), and waits for their grants.
func uiMakeGrants(t *testing.T, dev *uiDev, dir string) uiGrants {
	t.Helper()
	payout := func(name, amount string) string {
		return fmt.Sprintf(`component %q {
  plugin = "payout"
  count  = 1
  capability "payments:charge" {
    ttl       = "1m"
    effect    = "irreversible"
    approvals = 1
  }
  restart {
    attempts = 0
  }
  config = {
    amount = %q
    ledger = %q
  }
}`, name, amount, filepath.Join(dir, name+".ledger"))
	}
	specs := map[string]string{"payout.hcl": payout("payout", "42 EUR"), "payout2.hcl": payout("payout2", "1000000 EUR"),
		"fetch.hcl": fmt.Sprintf(`component "fetch" {
  plugin = "fetch"
  count  = 1
  capability "net:http:127.0.0.1" {
    ttl    = "10m"
    effect = "external"
  }
  config = {
    url      = "http://%s/report"
    interval = "1s"
    purpose  = "read the report"
  }
}`, testcluster.FreeAddr(t))}
	for _, name := range []string{"payout.hcl", "payout2.hcl", "fetch.hcl"} {
		if out, err := devCLI(t, dev.configDir, "deploy", "-f", writeSpec(t, dir, name, specs[name])); err != nil {
			t.Fatalf("ice deploy -f %s: %v\n%s", name, err, out)
		}
	}
	pending := func(g fsm.Grant) bool { return g.Status == fsm.GrantPending }
	return uiGrants{
		approve: uiGrant(t, dev, "payout", "payout's grant PENDING", pending),
		deny:    uiGrant(t, dev, "payout2", "payout2's grant PENDING", pending),
		revoke:  uiGrant(t, dev, "fetch", "fetch's grant GRANTED", func(g fsm.Grant) bool { return g.Status == fsm.GrantGranted }),
	}
}

// uiGrantRow is JavaScript for the row of grant g.
func uiGrantRow(g fsm.Grant) string {
	return `document.querySelector('table#grants tr[data-grant=` + jsString(g.ID) + `]')`
}

func uiCheckGrantsPage(t *testing.T, b *uiBrowser, tab context.Context, gs uiGrants) {
	b.open(t, tab, "/ui/grants")
	for _, g := range []fsm.Grant{gs.approve, gs.deny} {
		row := uiGrantRow(g)
		b.waitJS(t, tab, uiWait, "grant "+g.ID+" of "+g.Component+" PENDING with approve and deny for the approver",
			row+` !== null && `+row+`.dataset.status === 'PENDING' && `+row+`.querySelector('button.approve') !== null && `+row+`.querySelector('button.deny') !== null`,
			uiRows("grants", "grant"))
		cells := uiEval[string](t, tab, `['scope', 'effect', 'approvals', 'expires', 'uses'].map(c => `+row+`.querySelector('td.' + c).textContent.trim()).join(' | ')`)
		if want := "payments:charge | irreversible | 0 of 1 | lasts 1m once granted | 0"; cells != want {
			t.Errorf("grant %s shows %q, want %q", g.ID, cells, want)
		}
	}
	fetch := uiGrantRow(gs.revoke)
	b.waitJS(t, tab, uiWait, "fetch's grant GRANTED, its expiry shown, no revoke for a token without capability write on net:",
		fetch+` !== null && `+fetch+`.dataset.status === 'GRANTED' && `+fetch+`.querySelector('td.expires').textContent.trim() !== '' && `+fetch+`.querySelector('button') === null`,
		uiRows("grants", "grant"))
	// PENDING first, then GRANTED.
	order := uiEval[string](t, tab, `Array.from(document.querySelectorAll('table#grants tbody tr')).map(r => r.dataset.status).join(',')`)
	if !strings.HasPrefix(order, "PENDING,PENDING,GRANTED") {
		t.Errorf("grants in the order %s, want PENDING first", order)
	}
	b.waitJS(t, tab, uiWait, "the Approvals heading and the nav say 2 pending",
		`document.querySelector('#pending-summary').textContent.startsWith('2 grants wait') && document.querySelector('#nav-grants').textContent.includes('(2 pending)')`,
		`document.querySelector('#pending-summary').textContent + ' | ' + document.querySelector('#nav-grants').textContent`)
	b.screenshot(t, tab, "grants")
	// The status filter: GRANTED only.
	b.do(t, tab, "choose GRANTED", uiWait, chromedp.SetValue(chromedp.CSS(`select#filter-status`), "GRANTED"))
	uiEval[bool](t, tab, `document.querySelector('select#filter-status').dispatchEvent(new Event('change')) || true`)
	b.waitJS(t, tab, uiWait, "filtered to GRANTED",
		`location.search === '?status=GRANTED' && Array.from(document.querySelectorAll('table#grants tbody tr')).every(r => r.dataset.status === 'GRANTED') && `+fetch+` !== null`,
		uiRows("grants", "grant"))
}

func uiReadOnly(t *testing.T, b *uiBrowser, dev *uiDev, gs uiGrants) {
	viewer := b.tab("read-only-token")
	uiSignIn(t, b, viewer, dev.policyToken(t, "ui-viewer", `component "" { policy = "read" }
memory "" { policy = "read" }`), "")
	controls := `['button.approve', 'button.deny', 'button.revoke', 'button.invalidate', 'button.deprecate', 'input.reason'].filter(s => document.querySelector('main ' + s) !== null).join(', ')`
	b.open(t, viewer, "/ui/grants")
	b.waitJS(t, viewer, uiWait, "the read-only token sees the PENDING grant "+gs.approve.ID,
		uiGrantRow(gs.approve)+` !== null && `+uiGrantRow(gs.approve)+`.dataset.status === 'PENDING'`, uiRows("grants", "grant"))
	if got := uiEval[string](t, viewer, controls); got != "" {
		t.Errorf("the read-only token sees %s on the grants page", got)
	}
	b.open(t, viewer, "/ui/memory")
	b.waitJS(t, viewer, uiWait, "the read-only token sees the records",
		`document.querySelector('table#memory tr[data-record="fact/doc-a@2"]') !== null`, uiRows("memory", "record"))
	if got := uiEval[string](t, viewer, controls); got != "" {
		t.Errorf("the read-only token sees %s on the memory page", got)
	}
	b.open(t, viewer, "/ui/memory/fact/doc-a")
	b.waitJS(t, viewer, uiWait, "the read-only token sees fact/doc-a's versions and lineage",
		uiRows("versions", "version")+` === '2 DEPRECATED, 1 SUPERSEDED' && document.querySelector('#lineage').dataset.version === '2'`, uiRows("versions", "version"))
	if got := uiEval[string](t, viewer, controls); got != "" {
		t.Errorf("the read-only token sees %s on the record page", got)
	}
}

func uiDecideThroughPage(t *testing.T, b *uiBrowser, tab context.Context, dev *uiDev, gs uiGrants) {
	b.open(t, tab, "/ui/grants")
	b.waitJS(t, tab, uiWait, "both PENDING grants with their buttons",
		uiGrantRow(gs.approve)+`?.querySelector('button.approve') && `+uiGrantRow(gs.deny)+`?.querySelector('button.deny')`, uiRows("grants", "grant"))
	uiType(t, b, tab, "#reason-"+gs.approve.ID, "ui: invoice checked")
	b.clickLive(t, tab, "click Approve on "+gs.approve.ID, `table#grants tr[data-grant=`+jsString(gs.approve.ID)+`] button.approve`)
	// payout uses the grant as soon as it is GRANTED and releases it:
	// GRANTED shows as the index it was granted at, and the run paid.
	g := uiGrant(t, dev, "payout", "payout's grant GRANTED by the approval", func(x fsm.Grant) bool {
		return x.ID == gs.approve.ID && x.GrantIndex != 0 && (x.Status == fsm.GrantGranted || x.Status == fsm.GrantReleased)
	})
	if len(g.Approvals) != 1 || g.Approvals[0].Reason != "ui: invoice checked" {
		t.Errorf("payout's grant approvals %+v, want one with the reason typed", g.Approvals)
	}
	b.waitJS(t, tab, uiWait, "the page shows who approved "+gs.approve.ID,
		uiGrantRow(gs.approve)+`?.querySelector('li.approver .operator')?.textContent.trim() === `+jsString(g.Approvals[0].Operator),
		uiRows("grants", "grant"))
	testcluster.WaitFor(t, 60*time.Second, "payout's run paid", func() bool {
		r, _, err := dev.root.RunWait(tctx(t, 5*time.Second), g.Run, nil)
		return err == nil && r.State == fsm.StateTerminated && strings.Contains(r.Output, "paid")
	})

	uiType(t, b, tab, "#reason-"+gs.deny.ID, "ui: amount too large")
	b.clickLive(t, tab, "click Deny on "+gs.deny.ID, `table#grants tr[data-grant=`+jsString(gs.deny.ID)+`] button.deny`)
	d := uiGrant(t, dev, "payout2", "payout2's grant DENIED", func(x fsm.Grant) bool { return x.ID == gs.deny.ID && x.Status == fsm.GrantDenied })
	if d.Reason != "ui: amount too large" {
		t.Errorf("payout2's grant DENIED with reason %q", d.Reason)
	}
	b.waitJS(t, tab, uiWait, "the page shows "+gs.deny.ID+" DENIED, no grant pending",
		uiGrantRow(gs.deny)+`?.dataset.status === 'DENIED' && document.querySelector('#pending-summary').textContent.startsWith('No grant waits')`,
		uiRows("grants", "grant"))
}

func uiRevokeThroughPage(t *testing.T, b *uiBrowser, tab context.Context, dev *uiDev, gs uiGrants) {
	b.open(t, tab, "/ui/grants?status=GRANTED")
	row := `table#grants tr[data-grant=` + jsString(gs.revoke.ID) + `]`
	b.waitJS(t, tab, uiWait, "fetch's grant with Revoke for the dev token", `document.querySelector(`+jsString(row+` button.revoke`)+`) !== null`, uiRows("grants", "grant"))
	uiType(t, b, tab, "#reason-"+gs.revoke.ID, "ui: no longer needed")
	b.clickLive(t, tab, "click Revoke on "+gs.revoke.ID, row+` button.revoke`)
	g := uiGrant(t, dev, "fetch", "fetch's grant REVOKED", func(x fsm.Grant) bool { return x.ID == gs.revoke.ID && x.Status == fsm.GrantRevoked })
	if g.Reason != "ui: no longer needed" {
		t.Errorf("fetch's grant REVOKED with reason %q", g.Reason)
	}
}

// uiSelfApproval: a token that may deploy payout and write its capability,
// but is no management token, deploys payout3 and approves its grant on the
// page: the API refuses (its deployer may not approve it), the page shows
// the refusal, and the grant stays PENDING.
func uiSelfApproval(t *testing.T, b *uiBrowser, dev *uiDev, dir string) {
	secret := dev.policyToken(t, "ui-deployer", `component "" { policy = "write" }
capability "payments:" { policy = "write" }`)
	deployer, err := api.NewClientConfig(api.Config{Address: dev.addr, CACert: dev.caFile, Token: secret})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := api.ParseSpecFile("payout3.hcl", []byte(`component "payout3" {
  plugin = "payout"
  count  = 1
  capability "payments:charge" {
    ttl    = "1m"
    effect = "irreversible"
  }
  restart {
    attempts = 0
  }
  config = {
    amount = "7 EUR"
    ledger = `+jsString(filepath.Join(dir, "payout3.ledger"))+`
  }
}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deployer.PutComponent(tctx(t, 10*time.Second), spec, nil); err != nil {
		t.Fatalf("deploy payout3 with the deployer token: %v", err)
	}
	g := uiGrant(t, dev, "payout3", "payout3's grant PENDING", func(g fsm.Grant) bool { return g.Status == fsm.GrantPending })
	tab := b.tab("deployer-token")
	uiSignIn(t, b, tab, secret, "")
	b.open(t, tab, "/ui/grants")
	uiType(t, b, tab, "#reason-"+g.ID, "ui: my own")
	b.clickLive(t, tab, "click Approve on "+g.ID, `table#grants tr[data-grant=`+jsString(g.ID)+`] button.approve`)
	b.waitJS(t, tab, uiWait, "the refusal in p.error",
		`(() => { const e = document.querySelector('p.error'); return !e.hidden && e.textContent.includes('may not approve') })()`,
		`JSON.stringify(document.querySelector('p.error').textContent)`)
	got, err := dev.root.Grant(tctx(t, 5*time.Second), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != fsm.GrantPending || len(got.Approvals) != 0 {
		t.Errorf("after the refused self-approval grant %s is %s with %d approvals, want PENDING with none", g.ID, got.Status, len(got.Approvals))
	}
}
