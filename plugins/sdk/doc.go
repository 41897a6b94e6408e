// Package sdk is what a component plugin author imports: implement
// plugins.Component on one type and call Serve from main. Serve speaks the
// go-plugin handshake and gRPC protocol to the ICE agent, keeps the plugin
// alive if the agent restarts (so the new agent can reattach), logs to the
// per-run file the agent names, and stops the run by itself if its agent goes
// silent for longer than the agent allows (so a plugin never outlives the
// authority that started it).
//
// A complete plugin:
//
//	package main
//
//	import (
//		"context"
//		"time"
//
//		"github.com/ice-run/ice/plugins"
//		"github.com/ice-run/ice/plugins/sdk"
//	)
//
//	type hello struct{ stop chan struct{} }
//
//	func (h *hello) Info(context.Context) (plugins.Info, error) {
//		return plugins.Info{Name: "hello", Version: "0.1.0", Kind: plugins.KindService}, nil
//	}
//
//	func (h *hello) Start(_ context.Context, req plugins.StartRequest) error {
//		h.stop = make(chan struct{})
//		go func() {
//			for {
//				select {
//				case <-h.stop:
//					return
//				case <-time.After(time.Second):
//					sdk.Logger().Info("hello", "run", req.RunID, "epoch", req.Epoch)
//				}
//			}
//		}()
//		return nil
//	}
//
//	func (h *hello) Health(context.Context) (plugins.Health, error) {
//		return plugins.Health{Healthy: true}, nil
//	}
//
//	func (h *hello) Execute(context.Context, string) (string, error) {
//		return "", sdk.ErrNotFinite
//	}
//
//	func (h *hello) Stop(context.Context, time.Time) error {
//		close(h.stop)
//		return nil
//	}
//
//	func main() { sdk.Serve(&hello{}) }
//
// Build it, put the binary in the agent's --plugin-dir, and deploy a
// component with plugin = "hello" (the file name is the plugin name).
//
// A finite plugin whose Info sets Reusable: true may serve successive runs
// in one process: the agent keeps it warm and calls Start, Health, Execute
// and Stop for one run, then Start for the next (one run at a time). Serve
// switches Logger to each run's log and starts each run's cost at zero; the
// plugin itself must keep no state from one run's Execute to the next that
// Start does not reset. After a run's Stop the watchdog keeps running (the
// agent feeds an idle process with Health calls), so a warm process whose
// agent is gone exits too.
package sdk
