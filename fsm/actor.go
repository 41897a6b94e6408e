package fsm

import (
	"fmt"
	"strings"
)

// ActorKind is the kind of principal that issued a command.
type ActorKind uint8

// Actor kinds. Each is a bit so that authority tables can name several.
const (
	// KindOperator is a person or script using the API: "operator:<name>".
	KindOperator ActorKind = 1 << iota
	// KindAgent is a node agent: "agent:<node>".
	KindAgent
	// KindRuntime is the leader's own duties (reconciler, scheduler, lease
	// tracker): "runtime".
	KindRuntime
)

// String returns the kind's name as it appears in actor strings.
func (k ActorKind) String() string {
	var parts []string
	if k&KindOperator != 0 {
		parts = append(parts, "operator")
	}
	if k&KindAgent != 0 {
		parts = append(parts, "agent")
	}
	if k&KindRuntime != 0 {
		parts = append(parts, "runtime")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}

// Actor is a parsed principal.
type Actor struct {
	Kind ActorKind
	// Name is the operator's name or the agent's node id; empty for runtime.
	Name string
}

// RuntimeActor is the actor string of the leader's own duties.
const RuntimeActor = "runtime"

// OperatorActor returns the actor string for an operator.
func OperatorActor(name string) string { return "operator:" + name }

// AgentActor returns the actor string for the agent of a node.
func AgentActor(node string) string { return "agent:" + node }

// ParseActor parses "operator:<name>", "agent:<node>" or "runtime".
func ParseActor(s string) (Actor, error) {
	if s == RuntimeActor {
		return Actor{Kind: KindRuntime}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" || len(name) > maxNameLen {
		return Actor{}, fmt.Errorf("parse actor %q: want operator:<name>, agent:<node> or runtime: %w", s, ErrInvalid)
	}
	switch kind {
	case "operator":
		return Actor{Kind: KindOperator, Name: name}, nil
	case "agent":
		if err := validName("node id", name); err != nil {
			return Actor{}, fmt.Errorf("parse actor %q: %w", s, err)
		}
		return Actor{Kind: KindAgent, Name: name}, nil
	default:
		return Actor{}, fmt.Errorf("parse actor %q: unknown kind %q: %w", s, kind, ErrInvalid)
	}
}
