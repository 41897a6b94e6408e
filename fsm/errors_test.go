package fsm

import (
	"errors"
	"fmt"
	"testing"
)

// TestErrorKinds checks the one error table: every sentinel once, names
// unique, every status a 4xx or 5xx, and KindOf finds each through wrapping.
func TestErrorKinds(t *testing.T) {
	names := map[string]bool{}
	for i, k := range ErrorKinds {
		if names[k.Name] {
			t.Errorf("kind name %q twice", k.Name)
		}
		names[k.Name] = true
		for _, other := range ErrorKinds[:i] {
			if errors.Is(k.Err, other.Err) || errors.Is(other.Err, k.Err) {
				t.Errorf("%v and %v match each other", k.Err, other.Err)
			}
		}
		if k.HTTPStatus < 400 || k.HTTPStatus > 599 {
			t.Errorf("%s: HTTP status %d", k.Name, k.HTTPStatus)
		}
		wrapped := fmt.Errorf("op: %w", fmt.Errorf("inner: %w", k.Err))
		if got, ok := KindOf(wrapped); !ok || got.Name != k.Name {
			t.Errorf("KindOf(%v) = %v %v", wrapped, got.Name, ok)
		}
		if HTTPStatus(wrapped) != k.HTTPStatus || ErrorName(wrapped) != k.Name {
			t.Errorf("%s: HTTPStatus %d ErrorName %q", k.Name, HTTPStatus(wrapped), ErrorName(wrapped))
		}
	}
	if HTTPStatus(errors.New("disk on fire")) != StatusInternal || ErrorName(nil) != "other" {
		t.Error("an error that wraps no sentinel must be 500 and named other")
	}
}
