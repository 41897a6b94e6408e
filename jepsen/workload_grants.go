package jepsen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/internal/tlsutil"
)

// GrantsProcess is the process number of the first grants client in the
// history; the client acting for agent i (0-based) is GrantsProcess+i.
const GrantsProcess = 200

// Grant operations of the history.
const (
	FGrantRequest = "grant-request" // POST /v1/agent/grants (agent certificate)
	FGrantUse     = "grant-use"     // POST /v1/agent/grant-uses (agent certificate)
	FGrantRelease = "grant-release" // POST /v1/agent/grants/{id}/release (agent certificate)
	FGrantRevoke  = "grant-revoke"  // POST /v1/grants/{id}/revoke (management token)
	FGrantApprove = "grant-approve" // POST /v1/grants/{id}/approve (management token)
	FGrantDeny    = "grant-deny"    // POST /v1/grants/{id}/deny (management token)
)

// isGrantF reports whether f is a grant operation.
func isGrantF(f string) bool {
	switch f {
	case FGrantRequest, FGrantUse, FGrantRelease, FGrantRevoke, FGrantApprove, FGrantDeny:
		return true
	}
	return false
}

// Scopes the tickers declare (GrantCapabilities), and one they do not.
const (
	ScopeJepsen     = "net:http:jepsen.test"   // external, 30s
	ScopeShort      = "net:http:jepsen.short"  // internal, 2s: grants expire during the run
	ScopeCharge     = "payments:jepsen.charge" // irreversible, one approval
	ScopeUndeclared = "net:smtp:jepsen.test"   // requests are DENIED
)

// GrantCapabilities are the capabilities every ticker component declares,
// as `capability "net:http:jepsen.test" { ttl = "30s" effect = "external" }`
// and so on in HCL. The harness deploys with the management token, which
// holds capability write on every scope (acl/capability.go).
func GrantCapabilities() []api.CapabilitySpec {
	return []api.CapabilitySpec{
		{Scope: ScopeJepsen, TTL: "30s", Effect: string(fsm.EffectExternal)},
		{Scope: ScopeShort, TTL: "2s", Effect: string(fsm.EffectInternal)},
		{Scope: ScopeCharge, TTL: "30s", Effect: string(fsm.EffectIrreversible), Approvals: 1},
	}
}

// Why the workload sends an operation it expects to be refused (GrantOp.Stale).
const (
	StaleEndedUse     = "use-of-ended-grant"        // a grant released, revoked, expired, or of a run that ended
	StaleEpochUse     = "use-with-old-epoch"        // a live grant, an older epoch
	StaleEpochRequest = "request-with-old-epoch"    // an EXECUTING run, the epoch of an earlier run of its slot
	StaleRunRequest   = "request-for-ended-run"     // a run of this node that left EXECUTING, its own epoch
	StaleOtherNode    = "request-for-other-node"    // another node's run, spoken for as this node
	StaleForeignCert  = "certificate-of-other-node" // this node's certificate claiming another node
	StaleEpochRelease = "release-with-old-epoch"    // a live grant, an older epoch
	StaleApproveEnded = "approve-of-ended-grant"    // an operator approving a grant that ended
	StaleUndeclared   = "undeclared-scope"          // a scope the component does not declare: DENIED
)

// GrantOp is a grant operation in the history: the request in the invoke,
// the request and the server's answer in the completion.
type GrantOp struct {
	// Cert is whose credentials made the request: an agent id (its
	// certificate) or "management" (the management token).
	Cert string `json:"cert"`
	// Node is the node the request speaks for (agent endpoints).
	Node  string         `json:"node,omitempty"`
	Asks  []fsm.GrantAsk `json:"asks,omitempty"`
	Uses  []fsm.GrantUse `json:"uses,omitempty"`
	Grant string         `json:"grant,omitempty"` // release, revoke, approve, deny
	Epoch uint64         `json:"epoch,omitempty"` // release
	// Stale says why the workload expects a refusal ("": it expects the
	// operation to be accepted).
	Stale string `json:"stale,omitempty"`
	// Index and Items are the answer: the entry's index and, per ask or
	// use (one item for release, revoke, approve and deny), what became of it.
	Index uint64        `json:"index,omitempty"`
	Items []GrantAnswer `json:"items,omitempty"`
}

// GrantAnswer is the server's answer about one item of a grant operation.
type GrantAnswer struct {
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
	// The grant as the entry left it (Status 200).
	Grant       string          `json:"grant,omitempty"`
	GrantStatus fsm.GrantStatus `json:"grant_status,omitempty"`
	Run         string          `json:"run,omitempty"`
	Node        string          `json:"node,omitempty"`
	Epoch       uint64          `json:"epoch,omitempty"`
	Uses        uint64          `json:"uses,omitempty"`
	ExpireTime  int64           `json:"expire_time,omitempty"`
}

func answerOf(g *fsm.Grant) GrantAnswer {
	if g == nil {
		return GrantAnswer{Status: http.StatusOK}
	}
	return GrantAnswer{Status: http.StatusOK, Grant: g.ID, GrantStatus: g.Status, Run: g.Run, Node: g.Node, Epoch: g.Epoch,
		Uses: g.Uses, ExpireTime: g.ExpireTime}
}

func answersOf(items []api.GrantItem) []GrantAnswer {
	out := make([]GrantAnswer, len(items))
	for i, it := range items {
		if it.Grant != nil {
			out[i] = answerOf(it.Grant)
		}
		out[i].Status, out[i].Error = it.Status, it.Error
	}
	return out
}

// GrantsWorkload acts, during the faults, for the runs EXECUTING on the
// agents' nodes exactly as an agent would: with the agent's own client
// certificate it requests grants for the scopes the tickers declare,
// records uses and releases them; as an operator (the management token)
// it approves, denies and revokes them. It also sends stale requests (old
// epochs, ended runs and grants, another node's runs) and records what the
// server answered. It never heartbeats: the agents' leases stay theirs.
type GrantsWorkload struct {
	C   *Cluster
	Rec *Recorder
	// Interval is the mean time between one client's operations.
	Interval time.Duration
	Seed     uint64

	clients map[string][]*api.Client // agent id → a client per server, in C.Servers' order
	counts  sync.Map                 // "f type" → *atomic.Int64
}

// Prepare makes every agent's clients: HTTPS with the agent's certificate
// (the one cluster.go made for its process), no token.
func (w *GrantsWorkload) Prepare() error {
	w.clients = map[string][]*api.Client{}
	for _, a := range w.C.Agents {
		cert, key, err := w.C.Creds.Cert(tlsutil.RoleAgent, a.ID)
		if err != nil {
			return fmt.Errorf("grants workload: certificate of agent %s: %w", a.ID, err)
		}
		for _, s := range w.C.Servers {
			cl, err := api.NewClientConfig(api.Config{Address: "https://" + s.HTTP, CACert: w.C.Creds.CAFile, ClientCert: cert, ClientKey: key})
			if err != nil {
				return fmt.Errorf("grants workload: client of agent %s for %s: %w", a.ID, s.ID, err)
			}
			w.clients[a.ID] = append(w.clients[a.ID], cl)
		}
	}
	return nil
}

// Run drives one client per agent until ctx ends.
func (w *GrantsWorkload) Run(ctx context.Context) {
	interval := w.Interval
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	var wg sync.WaitGroup
	for i, a := range w.C.Agents {
		c := &grantClient{w: w, agent: a, process: GrantsProcess + i, interval: interval, cur: i % len(w.C.Servers),
			rng: rand.New(rand.NewPCG(w.Seed, 0x6a7+uint64(i))), live: map[string]*heldGrant{}, pending: map[string]*heldGrant{},
			seen: map[string]fsm.Run{}}
		wg.Go(func() { c.run(ctx) })
	}
	wg.Wait()
}

func (w *GrantsWorkload) count(f, typ string) {
	v, _ := w.counts.LoadOrStore(f+" "+typ, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// Counts returns operation counts by "f type".
func (w *GrantsWorkload) Counts() map[string]int64 {
	out := map[string]int64{}
	w.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// heldGrant is a grant as the client knows it.
type heldGrant struct {
	id, run, component string
	epoch              uint64
	slot               int
	expires            int64 // leader time; 0 while PENDING
}

// grantClient acts for one agent's node.
type grantClient struct {
	w        *GrantsWorkload
	agent    *Agent
	process  int
	interval time.Duration
	rng      *rand.Rand
	cur      int // the server it talks to

	runs    []fsm.Run             // the last run list
	seen    map[string]fsm.Run    // runs seen EXECUTING on this node
	oldRuns []fsm.Run             // runs of this node that left EXECUTING (newest last)
	live    map[string]*heldGrant // GRANTED
	pending map[string]*heldGrant // PENDING approval
	ended   []*heldGrant          // ended, as far as the client knows (newest last)
}

const (
	maxOldRuns    = 8
	maxEnded      = 16
	maxLivePerCli = 12
)

func (c *grantClient) run(ctx context.Context) {
	next := time.Now().Add(time.Duration(c.rng.Int64N(int64(c.interval))))
	for {
		if !sleepUntil(ctx, next) {
			return
		}
		next = next.Add(c.interval/2 + time.Duration(c.rng.Int64N(int64(c.interval))))
		if now := time.Now(); next.Before(now) {
			next = now // an op that took long does not cause a burst
		}
		if !c.refresh(ctx) {
			c.hop()
			continue
		}
		if e := c.step(ctx); e.Type != "" && e.Type != TOK && e.Status != http.StatusConflict && e.Status != http.StatusForbidden &&
			e.Status != http.StatusNotFound {
			c.hop()
		} else if c.rng.IntN(20) == 0 {
			c.cur = c.rng.IntN(len(c.w.C.Servers))
		}
	}
}

// hop moves to another server.
func (c *grantClient) hop() {
	if n := len(c.w.C.Servers); n > 1 {
		c.cur = (c.cur + 1 + c.rng.IntN(n-1)) % n
	}
}

func (c *grantClient) server() *Server { return c.w.C.Servers[c.cur] }

// agentClient is the client of this node's agent for the current server.
func (c *grantClient) agentClient() *api.Client { return c.w.clients[c.agent.ID][c.cur] }

// refresh reads the runs (consistently) and forgets the grants of runs
// that are no longer EXECUTING.
func (c *grantClient) refresh(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	runs, _, err := c.server().Client().Runs(rctx, "", nil)
	cancel()
	if err != nil {
		return false
	}
	c.runs = runs
	executing := map[string]fsm.Run{}
	for _, r := range runs {
		if r.State == fsm.StateExecuting && r.Node == c.agent.ID {
			executing[r.ID] = r
			c.seen[r.ID] = r
		}
	}
	for id, r := range c.seen {
		if _, ok := executing[id]; !ok {
			delete(c.seen, id)
			c.oldRuns = append(c.oldRuns, r)
			if len(c.oldRuns) > maxOldRuns {
				c.oldRuns = c.oldRuns[1:]
			}
		}
	}
	now := time.Now().UnixNano()
	for _, m := range []map[string]*heldGrant{c.live, c.pending} {
		for id, g := range m {
			if _, ok := executing[g.run]; !ok || (g.expires != 0 && g.expires <= now) {
				c.end(id)
			}
		}
	}
	return true
}

// end moves a grant the client holds to its ended ones.
func (c *grantClient) end(id string) {
	g, ok := c.live[id]
	if !ok {
		g, ok = c.pending[id]
	}
	if !ok {
		return
	}
	delete(c.live, id)
	delete(c.pending, id)
	c.ended = append(c.ended, g)
	if len(c.ended) > maxEnded {
		c.ended = c.ended[1:]
	}
}

// mine returns the runs EXECUTING on this node, and those on other nodes.
func (c *grantClient) mine() (mine, others []fsm.Run) {
	for _, r := range c.runs {
		if r.State != fsm.StateExecuting || r.Node == "" {
			continue
		}
		if r.Node == c.agent.ID {
			mine = append(mine, r)
		} else {
			others = append(others, r)
		}
	}
	return mine, others
}

// step does one operation, chosen at random among those possible; it
// returns its completion (zero when there was nothing to do).
func (c *grantClient) step(ctx context.Context) Entry {
	mine, others := c.mine()
	type action struct {
		weight int
		do     func() Entry
	}
	var acts []action
	add := func(w int, ok bool, do func() Entry) {
		if ok {
			acts = append(acts, action{w, do})
		}
	}
	add(20, len(mine) > 0 && len(c.live)+len(c.pending) < maxLivePerCli, func() Entry { return c.request(ctx, mine) })
	add(40, len(c.live) > 0, func() Entry { return c.use(ctx) })
	add(6, len(c.live) > 0, func() Entry { return c.release(ctx) })
	add(5, len(c.live)+len(c.pending) > 0, func() Entry { return c.revoke(ctx) })
	add(12, len(c.pending) > 0, func() Entry { return c.decide(ctx) })
	add(16, true, func() Entry { return c.stale(ctx, mine, others) })
	total := 0
	for _, a := range acts {
		total += a.weight
	}
	pick := c.rng.IntN(total)
	for _, a := range acts {
		if pick -= a.weight; pick < 0 {
			return a.do()
		}
	}
	return Entry{}
}

// pickGrant returns one of the grants of m at random (nil when empty).
func (c *grantClient) pickGrant(ms ...map[string]*heldGrant) *heldGrant {
	var ids []string
	for _, m := range ms {
		for id := range m {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	id := ids[c.rng.IntN(len(ids))]
	for _, m := range ms {
		if g, ok := m[id]; ok {
			return g
		}
	}
	return nil
}

// call records one operation: its invoke, the call fn makes (filling in
// the answer), and its completion.
func (c *grantClient) call(ctx context.Context, id int64, f, key string, op GrantOp, fn func(context.Context, *GrantOp) error) Entry {
	req := op
	srv := c.server()
	c.w.Rec.Add(Entry{Type: TInvoke, Process: c.process, ID: id, F: f, Key: key, Server: srv.ID, Grant: &req})
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	err := fn(rctx, &op)
	cancel()
	done := Entry{Process: c.process, ID: id, F: f, Key: key, Server: srv.ID, Type: classifyWrite(err), Grant: &op}
	if err == nil {
		done.Status = http.StatusOK
	} else {
		done.Error = err.Error()
		var ae *api.APIError
		if errors.As(err, &ae) {
			done.Status = ae.Status
		}
	}
	c.w.count(f, done.Type)
	return c.w.Rec.Add(done)
}

// requestGrants records a request of asks, speaking for node with this
// agent's certificate, and learns the grants it made.
func (c *grantClient) requestGrants(ctx context.Context, id int64, node, key, stale string, asks []fsm.GrantAsk) Entry {
	cl := c.agentClient()
	e := c.call(ctx, id, FGrantRequest, key, GrantOp{Cert: c.agent.ID, Node: node, Asks: asks, Stale: stale}, func(ctx context.Context, op *GrantOp) error {
		resp, err := cl.RequestGrants(ctx, op.Node, op.Asks)
		if err != nil {
			return fmt.Errorf("request %d grants for node %s: %w", len(op.Asks), op.Node, err)
		}
		op.Index, op.Items = resp.Index, answersOf(resp.Grants)
		return nil
	})
	if e.Type == TOK && node == c.agent.ID {
		for _, it := range e.Grant.Items {
			c.learn(it)
		}
	}
	return e
}

// learn takes a granted or pending grant from an answer.
func (c *grantClient) learn(it GrantAnswer) {
	if it.Status != http.StatusOK || it.Grant == "" {
		return
	}
	r, ok := c.seen[it.Run]
	if !ok || it.Epoch != r.Epoch {
		return
	}
	g := &heldGrant{id: it.Grant, run: it.Run, component: r.Component, slot: r.Slot, epoch: it.Epoch}
	switch it.GrantStatus {
	case fsm.GrantGranted:
		g.expires = it.ExpireTime
		delete(c.pending, g.id)
		c.live[g.id] = g
	case fsm.GrantPending:
		c.pending[g.id] = g
	default:
		if _, held := c.live[g.id]; held {
			c.end(g.id)
		} else if _, held := c.pending[g.id]; held {
			c.end(g.id)
		}
	}
}

// request asks for a declared scope (now and then two, or an undeclared
// one) for one of this node's EXECUTING runs.
func (c *grantClient) request(ctx context.Context, mine []fsm.Run) Entry {
	r := mine[c.rng.IntN(len(mine))]
	id := c.w.Rec.NewID()
	scopes, stale := []string{ScopeJepsen}, ""
	switch p := c.rng.IntN(100); {
	case p < 25:
		scopes = []string{ScopeShort}
	case p < 35:
		scopes = []string{ScopeCharge}
	case p < 50:
		scopes = []string{ScopeJepsen, ScopeShort}
	case p < 55:
		scopes, stale = []string{ScopeUndeclared}, StaleUndeclared
	}
	asks := make([]fsm.GrantAsk, len(scopes))
	for i, s := range scopes {
		asks[i] = fsm.GrantAsk{Run: r.ID, Epoch: r.Epoch, Scope: s, Purpose: askPurpose(c.process, id, i)}
	}
	return c.requestGrants(ctx, id, c.agent.ID, r.Component, stale, asks)
}

// askPurpose and useDetail are unique per ask and use, so that the
// checker finds each in the event log.
func askPurpose(process int, id int64, i int) string {
	return fmt.Sprintf("jepsen p%d op%d ask%d", process, id, i)
}

func useDetail(process int, id int64, i int) string {
	return fmt.Sprintf("jepsen p%d op%d use%d", process, id, i)
}

// recordUses records uses of the given grants (with the given epochs).
func (c *grantClient) recordUses(ctx context.Context, stale string, gs []*heldGrant, epochs []uint64) Entry {
	id := c.w.Rec.NewID()
	uses := make([]fsm.GrantUse, len(gs))
	for i, g := range gs {
		uses[i] = fsm.GrantUse{ID: g.id, Epoch: epochs[i], Detail: useDetail(c.process, id, i)}
	}
	cl := c.agentClient()
	e := c.call(ctx, id, FGrantUse, gs[0].component, GrantOp{Cert: c.agent.ID, Node: c.agent.ID, Uses: uses, Stale: stale},
		func(ctx context.Context, op *GrantOp) error {
			resp, err := cl.RecordGrantUses(ctx, op.Node, op.Uses)
			if err != nil {
				return fmt.Errorf("record %d grant uses for node %s: %w", len(op.Uses), op.Node, err)
			}
			op.Index, op.Items = resp.Index, answersOf(resp.Uses)
			return nil
		})
	if e.Type == TOK && stale == "" {
		for i, it := range e.Grant.Items {
			if it.Status != http.StatusOK && i < len(gs) {
				c.end(gs[i].id) // refused: it ended (or its run lost its authority)
			}
		}
	}
	return e
}

// use records one to three uses of live grants.
func (c *grantClient) use(ctx context.Context) Entry {
	n := 1 + c.rng.IntN(3)
	var gs []*heldGrant
	var epochs []uint64
	for range n {
		g := c.pickGrant(c.live)
		gs, epochs = append(gs, g), append(epochs, g.epoch)
	}
	return c.recordUses(ctx, "", gs, epochs)
}

// releaseGrant records a release of g at epoch.
func (c *grantClient) releaseGrant(ctx context.Context, g *heldGrant, epoch uint64, stale string) Entry {
	cl := c.agentClient()
	e := c.call(ctx, c.w.Rec.NewID(), FGrantRelease, g.component, GrantOp{Cert: c.agent.ID, Node: c.agent.ID, Grant: g.id, Epoch: epoch, Stale: stale},
		func(ctx context.Context, op *GrantOp) error {
			resp, err := cl.ReleaseGrant(ctx, op.Node, op.Grant, op.Epoch)
			if err != nil {
				return fmt.Errorf("release grant %s for node %s epoch %d: %w", op.Grant, op.Node, op.Epoch, err)
			}
			op.Index, op.Items = resp.Index, []GrantAnswer{answerOf(resp.Grant)}
			return nil
		})
	if stale == "" && (e.Type == TOK || e.Status == http.StatusConflict || e.Status == http.StatusNotFound) {
		c.end(g.id)
	}
	return e
}

func (c *grantClient) release(ctx context.Context) Entry {
	g := c.pickGrant(c.live)
	return c.releaseGrant(ctx, g, g.epoch, "")
}

// operator records an approve, deny or revoke of g with the management
// token.
func (c *grantClient) operator(ctx context.Context, f string, g *heldGrant, stale string) Entry {
	cl := c.server().Client()
	e := c.call(ctx, c.w.Rec.NewID(), f, g.component, GrantOp{Cert: "management", Grant: g.id, Stale: stale},
		func(ctx context.Context, op *GrantOp) error {
			var resp *api.GrantDecisionResponse
			var err error
			switch f {
			case FGrantApprove:
				resp, err = cl.ApproveGrant(ctx, op.Grant, "jepsen approves")
			case FGrantDeny:
				resp, err = cl.DenyGrant(ctx, op.Grant, "jepsen denies")
			default:
				resp, err = cl.RevokeGrant(ctx, op.Grant, "jepsen revokes")
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", f, op.Grant, err)
			}
			op.Index, op.Items = resp.Index, []GrantAnswer{answerOf(resp.Grant)}
			return nil
		})
	switch {
	case stale != "":
	case e.Type == TOK && f == FGrantApprove:
		c.learn(e.Grant.Items[0])
	case e.Type == TOK || e.Status == http.StatusConflict || e.Status == http.StatusNotFound:
		c.end(g.id)
	}
	return e
}

func (c *grantClient) revoke(ctx context.Context) Entry {
	return c.operator(ctx, FGrantRevoke, c.pickGrant(c.live, c.pending), "")
}

// decide approves (mostly) or denies a pending grant.
func (c *grantClient) decide(ctx context.Context) Entry {
	f := FGrantApprove
	if c.rng.IntN(5) == 0 {
		f = FGrantDeny
	}
	return c.operator(ctx, f, c.pickGrant(c.pending), "")
}

// olderEpoch is an epoch below run r's: an earlier run of its slot's, or
// r's own minus one.
func (c *grantClient) olderEpoch(component string, slot int, epoch uint64) uint64 {
	for i := len(c.oldRuns) - 1; i >= 0; i-- {
		if o := c.oldRuns[i]; o.Component == component && o.Slot == slot && o.Epoch < epoch {
			return o.Epoch
		}
	}
	return epoch - 1
}

// stale sends one deliberately stale operation, chosen among those
// possible now.
func (c *grantClient) stale(ctx context.Context, mine, others []fsm.Run) Entry {
	var kinds []string
	if len(c.ended) > 0 {
		kinds = append(kinds, StaleEndedUse, StaleApproveEnded)
	}
	if len(c.live) > 0 {
		kinds = append(kinds, StaleEpochUse, StaleEpochRelease)
	}
	if len(mine) > 0 {
		kinds = append(kinds, StaleEpochRequest)
	}
	if len(c.oldRuns) > 0 {
		kinds = append(kinds, StaleRunRequest)
	}
	if len(others) > 0 {
		kinds = append(kinds, StaleOtherNode, StaleForeignCert)
	}
	if len(kinds) == 0 {
		return Entry{}
	}
	kind := kinds[c.rng.IntN(len(kinds))]
	id := c.w.Rec.NewID()
	ask := func(r fsm.Run, epoch uint64) []fsm.GrantAsk {
		return []fsm.GrantAsk{{Run: r.ID, Epoch: epoch, Scope: ScopeJepsen, Purpose: askPurpose(c.process, id, 0)}}
	}
	switch kind {
	case StaleEndedUse:
		g := c.ended[c.rng.IntN(len(c.ended))]
		return c.recordUses(ctx, kind, []*heldGrant{g}, []uint64{g.epoch})
	case StaleApproveEnded:
		return c.operator(ctx, FGrantApprove, c.ended[c.rng.IntN(len(c.ended))], kind)
	case StaleEpochUse:
		g := c.pickGrant(c.live)
		return c.recordUses(ctx, kind, []*heldGrant{g}, []uint64{c.olderEpoch(g.component, g.slot, g.epoch)})
	case StaleEpochRelease:
		g := c.pickGrant(c.live)
		return c.releaseGrant(ctx, g, c.olderEpoch(g.component, g.slot, g.epoch), kind)
	case StaleEpochRequest:
		r := mine[c.rng.IntN(len(mine))]
		return c.requestGrants(ctx, id, c.agent.ID, r.Component, kind, ask(r, c.olderEpoch(r.Component, r.Slot, r.Epoch)))
	case StaleRunRequest:
		r := c.oldRuns[c.rng.IntN(len(c.oldRuns))]
		return c.requestGrants(ctx, id, c.agent.ID, r.Component, kind, ask(r, r.Epoch))
	case StaleOtherNode:
		r := others[c.rng.IntN(len(others))]
		return c.requestGrants(ctx, id, c.agent.ID, r.Component, kind, ask(r, r.Epoch))
	default: // StaleForeignCert
		r := others[c.rng.IntN(len(others))]
		return c.requestGrants(ctx, id, r.Node, r.Component, kind, ask(r, r.Epoch))
	}
}
