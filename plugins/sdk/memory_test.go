package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/ice-run/ice/plugins"
)

// memHost is an agent side serving facts "fact/doc-N" (N < 3, version 2
// the newest) and refusing other types as the agent does.
type memHost struct {
	scriptHost
	mu    sync.Mutex
	reads []string
	down  bool
}

func (h *memHost) ReadMemory(_ context.Context, typ, key string, v uint64) (plugins.MemoryRecord, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.down:
		return plugins.MemoryRecord{}, plugins.HostErrorf(plugins.HostErrUnavailable, "no server")
	case typ != "fact":
		return plugins.MemoryRecord{}, plugins.HostErrorf(plugins.HostErrNotAllowed, "component c may not read records of type %s (it reads [fact])", typ)
	case !strings.HasPrefix(key, "doc-") || key > "doc-2" || v > 2:
		return plugins.MemoryRecord{}, plugins.HostErrorf(plugins.HostErrNotFound, "memory record %s/%s: not found", typ, key)
	}
	status := plugins.MemoryActive
	if v == 0 {
		v = 2
	} else if v < 2 {
		status = plugins.MemorySuperseded
	}
	h.reads = append(h.reads, fmt.Sprintf("%s/%s@%d", typ, key, v))
	return plugins.MemoryRecord{Type: typ, Key: key, Version: v, Value: "text of " + key, Status: status, Run: "r-" + key, Index: 10 + v, Time: time.Unix(0, int64(v))}, nil
}

func (h *memHost) ListMemory(_ context.Context, typ string) ([]plugins.MemoryRecord, error) {
	if typ != "fact" {
		return nil, plugins.HostErrorf(plugins.HostErrNotAllowed, "component c may not read records of type %s (it reads [fact])", typ)
	}
	var out []plugins.MemoryRecord
	for _, k := range []string{"doc-1", "doc-2"} {
		m, _ := h.ReadMemory(context.Background(), typ, k, 0)
		out = append(out, m)
	}
	return out, nil
}

// TestMemoryErrors: reads and lists map the agent's answers onto the
// SDK's records and errors.
func TestMemoryErrors(t *testing.T) {
	h := &memHost{}
	ctx := testCtx(t)
	m, err := readMemory(ctx, h, "fact", "doc-1", 0)
	if err != nil || m.Version != 2 || m.Status != plugins.MemoryActive || m.Value != "text of doc-1" || m.Run != "r-doc-1" || m.Index != 12 || m.Ref() != "fact/doc-1@2" {
		t.Fatalf("read = %+v, %v", m, err)
	}
	if m, err := readMemory(ctx, h, "fact", "doc-1", 1); err != nil || m.Status != plugins.MemorySuperseded {
		t.Fatalf("read version 1 = %+v, %v", m, err)
	}
	_, err = readMemory(ctx, h, "secret", "x", 0)
	if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "may not read records of type secret (it reads [fact])") {
		t.Fatalf("unlisted type: %v, want ErrNotAllowed with the reason", err)
	}
	if _, err := readMemory(ctx, h, "fact", "doc-9", 0); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "fact/doc-9") {
		t.Fatalf("missing record: %v, want ErrNotFound", err)
	}
	if _, err := readMemory(ctx, h, "fact", "doc-1", 7); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "fact/doc-1@7") {
		t.Fatalf("missing version: %v, want ErrNotFound naming the version", err)
	}
	if _, err := readMemory(ctx, h, "fact", "", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty key: %v", err)
	}
	ms, err := listMemory(ctx, h, "fact")
	if err != nil || len(ms) != 2 || ms[0].Key != "doc-1" || ms[1].Key != "doc-2" {
		t.Fatalf("list = %+v, %v", ms, err)
	}
	if _, err := listMemory(ctx, h, "secret"); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("list of an unlisted type: %v", err)
	}
	h.down = true
	if _, err := readMemory(ctx, h, "fact", "doc-1", 0); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("agent unavailable: %v, want ErrNoAgent", err)
	}
	if err := memoryErr(plugins.HostErrorf(plugins.HostErrRefused, "run r is not EXECUTING")); !errors.Is(err, ErrMemoryRefused) {
		t.Fatalf("refused: %v", err)
	}
}

// reader is a finite plugin that reads memory, its meta and adds cost
// through the SDK's process-wide link and meter.
type reader struct{ stopRecorder }

func (*reader) Execute(ctx context.Context, input string) (string, error) {
	doc := RunMeta(ctx)["doc"]
	AddCost("tokens", 40)
	AddCost("bad unit", 1) // logged, not counted
	m, err := ReadMemory(ctx, "fact", "doc-"+doc)
	if err != nil {
		return "", err
	}
	old, err := ReadMemoryVersion(ctx, "fact", "doc-"+doc, 1)
	if err != nil {
		return "", err
	}
	all, err := ListMemory(ctx, "fact")
	if err != nil {
		return "", err
	}
	AddCost("tokens", 2)
	if _, err := ReadMemory(ctx, "summary", "all"); !errors.Is(err, ErrNotAllowed) {
		return "", fmt.Errorf("summary read: %v, want ErrNotAllowed", err)
	}
	if input == "fail" {
		return "", errors.New("model refused")
	}
	return fmt.Sprintf("%s %s@%d %s@%d %d", input, m.Key, m.Version, old.Key, old.Version, len(all)), nil
}

// TestServeMemoryMetaCost: a plugin served as Serve serves it reads memory
// through the agent's host channel, sees its meta, and its cost comes back
// with Execute's outcome, failed or not.
func TestServeMemoryMetaCost(t *testing.T) {
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{
		plugins.PluginName: plugins.ServedPlugins(newGuard(&reader{}, func(int) {}), link, meter)[plugins.ProtocolVersion][plugins.PluginName],
	})
	t.Cleanup(func() { server.Stop(); client.Close() })
	raw, err := client.Dispense(plugins.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	h := &memHost{}
	ctx, cancel := context.WithCancel(testCtx(t))
	served := make(chan error, 1)
	go func() { served <- raw.(plugins.HostServer).ServeHost(ctx, h) }()
	defer func() { cancel(); <-served }()
	ex := raw.(plugins.Executor)
	res, err := ex.ExecuteRun(testCtx(t), plugins.ExecuteRequest{Input: "in", Meta: map[string]string{"doc": "1"}})
	if err != nil || res.Output != "in doc-1@2 doc-1@1 2" {
		t.Fatalf("execute = %+v, %v", res, err)
	}
	if len(res.Cost) != 1 || res.Cost["tokens"] != 42 {
		t.Fatalf("cost = %v, want tokens 42 (the invalid unit dropped)", res.Cost)
	}
	res, err = ex.ExecuteRun(testCtx(t), plugins.ExecuteRequest{Input: "fail", Meta: map[string]string{"doc": "2"}})
	if err == nil || !strings.Contains(err.Error(), "model refused") || res.Cost["tokens"] != 84 {
		t.Fatalf("failed execute = %+v, %v, want the error and the totals (tokens 84)", res, err)
	}
	if Cost()["tokens"] != 84 {
		t.Fatalf("Cost() = %v", Cost())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if want := "fact/doc-1@2 fact/doc-1@1 fact/doc-1@2 fact/doc-2@2"; strings.Join(h.reads[:4], " ") != want {
		t.Fatalf("the agent served %v, want %s first", h.reads, want)
	}
}
