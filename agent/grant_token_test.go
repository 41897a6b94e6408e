package agent

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ice-run/ice/api"
	"github.com/ice-run/ice/fsm"
	"github.com/ice-run/ice/plugins"
)

// tokenAPI answers GrantToken with the queued errors, then a token.
type tokenAPI struct {
	grantAPI // the other calls are not made
	errs     []error
	calls    int
}

func (f *tokenAPI) GrantToken(context.Context, string, string, uint64) (*api.GrantTokenResponse, error) {
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &api.GrantTokenResponse{Token: "tok", Expires: time.Now().Add(time.Minute).Unix()}, nil
}

// TestGrantTokenWaitsForASigningServer: a server that cannot sign yet
// (503) is asked again, so the run gets its token instead of an error that
// would make the plugin ask for another grant; a refusal is not retried.
func TestGrantTokenWaitsForASigningServer(t *testing.T) {
	h := &runHost{a: &Agent{cfg: Config{NodeID: "n1", RequestTimeout: time.Second}, logger: hclog.NewNullLogger()}, run: "r1", epoch: 7}
	g := fsm.Grant{ID: "g1", Status: fsm.GrantGranted}
	unavailable := &api.APIError{Status: http.StatusServiceUnavailable, Message: "signing key not registered yet"}
	f := &tokenAPI{errs: []error{unavailable, unavailable}}
	got, err := h.withToken(context.Background(), f, g)
	if err != nil || got.Token != "tok" || f.calls != 3 {
		t.Fatalf("token after two 503s: %+v, %v, %d calls", got, err, f.calls)
	}
	refused := &api.APIError{Status: http.StatusConflict, Message: "grant ended"}
	f = &tokenAPI{errs: []error{refused}}
	_, err = h.withToken(context.Background(), f, g)
	var he *plugins.HostError
	if !errors.As(err, &he) || he.Code != plugins.HostErrEnded || f.calls != 1 {
		t.Fatalf("token of an ended grant: %v after %d calls", err, f.calls)
	}
}
