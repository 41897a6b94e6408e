package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/ice-run/ice/fsm"
)

// ComponentSpec is the body of PUT /v1/components/{name}: what an operator
// writes. Durations are Go duration strings ("1s", "250ms"); config values
// may be strings, numbers or booleans and reach plugins as strings.
type ComponentSpec struct {
	Name        string             `json:"name,omitempty"`
	Plugin      fsm.PluginRef      `json:"plugin"`
	Config      map[string]any     `json:"config,omitempty"`
	Count       *int               `json:"count,omitempty"`
	Constraints []fsm.Constraint   `json:"constraints,omitempty"`
	Restart     *RestartPolicySpec `json:"restart,omitempty"`
	// MaxParallel is how many runs a rolling update or a drain replaces at
	// a time (default 1).
	MaxParallel int `json:"max_parallel,omitempty"`
	// OutputPattern is the regular expression a finite run's output must
	// match to be committed.
	OutputPattern string `json:"output_pattern,omitempty"`
	// Capabilities are what the component's runs may request grants for
	// (capability.go).
	Capabilities []CapabilitySpec `json:"capabilities,omitempty"`
	// Dispatch, Memory, Reads and Budget: see memory_spec.go.
	Dispatch bool            `json:"dispatch,omitempty"`
	Memory   *MemorySpecWire `json:"memory,omitempty"`
	Reads    []string        `json:"reads,omitempty"`
	Budget   *BudgetSpec     `json:"budget,omitempty"`
}

// RestartPolicySpec is the wire form of fsm.RestartPolicy.
type RestartPolicySpec struct {
	Attempts *int   `json:"attempts,omitempty"`
	Delay    string `json:"delay,omitempty"`
	MaxDelay string `json:"max_delay,omitempty"`
}

// Restart policy defaults, as Nomad's service jobs use.
const (
	DefaultRestartAttempts = 3
	DefaultRestartDelay    = time.Second
	DefaultRestartMaxDelay = 30 * time.Second
)

// ToFSM validates the spec and converts it to the state machine's form.
// name is the component name from the URL; a name in the body must match.
func (c *ComponentSpec) ToFSM(name string) (fsm.Spec, error) {
	if err := CheckText("component name", name); err != nil {
		return fsm.Spec{}, err
	}
	if err := c.CheckText(); err != nil {
		return fsm.Spec{}, err
	}
	if c.Name != "" && c.Name != name {
		return fsm.Spec{}, fmt.Errorf("spec names component %q but the request is for %q: %w", c.Name, name, fsm.ErrBadRequest)
	}
	sp := fsm.Spec{Name: name, Plugin: c.Plugin, Constraints: c.Constraints, Count: 1, OutputPattern: c.OutputPattern, MaxParallel: c.MaxParallel}
	if c.Count != nil {
		sp.Count = *c.Count
	}
	if len(c.Config) > 0 {
		sp.Config = make(map[string]string, len(c.Config))
		keys := make([]string, 0, len(c.Config))
		for k := range c.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, err := configValue(c.Config[k])
			if err != nil {
				return fsm.Spec{}, fmt.Errorf("config key %q: %w", k, err)
			}
			sp.Config[k] = v
		}
	}
	sp.Restart = fsm.RestartPolicy{
		Attempts:      DefaultRestartAttempts,
		DelayNanos:    int64(DefaultRestartDelay),
		MaxDelayNanos: int64(DefaultRestartMaxDelay),
	}
	if r := c.Restart; r != nil {
		if r.Attempts != nil {
			sp.Restart.Attempts = *r.Attempts
		}
		var err error
		if sp.Restart.DelayNanos, err = parseDuration("restart delay", r.Delay, sp.Restart.DelayNanos); err != nil {
			return fsm.Spec{}, err
		}
		if sp.Restart.MaxDelayNanos, err = parseDuration("restart max_delay", r.MaxDelay, sp.Restart.MaxDelayNanos); err != nil {
			return fsm.Spec{}, err
		}
	}
	caps, err := capabilitiesToFSM(c.Capabilities)
	if err != nil {
		return fsm.Spec{}, err
	}
	sp.Capabilities = caps
	if err := c.memoryToFSM(&sp); err != nil {
		return fsm.Spec{}, err
	}
	if err := fsm.ValidateSpec(&sp); err != nil {
		return fsm.Spec{}, err
	}
	return sp, nil
}

func parseDuration(what, s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a non-negative duration like \"1s\": %w", what, s, fsm.ErrBadRequest)
	}
	return int64(d), nil
}

// configValue turns a JSON primitive into the string a plugin receives.
func configValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case json.Number:
		return x.String(), nil
	}
	return "", fmt.Errorf("value of type %T: want a string, number or boolean: %w", v, fsm.ErrBadRequest)
}

// PutComponentResponse answers PUT and DELETE on a component.
type PutComponentResponse struct {
	Name       string `json:"name"`
	Generation uint64 `json:"generation"`
	Index      uint64 `json:"index"`
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Headers the API reads and writes.
const (
	// HeaderIndex carries the applied index a read reflects.
	HeaderIndex = "X-Ice-Index"
	// HeaderOperator names the operator making a request (actor
	// "operator:<name>").
	HeaderOperator = "X-Ice-Operator"
	// HeaderPurpose carries the declared purpose of a write.
	HeaderPurpose = "X-Ice-Purpose"
	// HeaderForwarded marks a request a follower forwarded to the leader.
	HeaderForwarded = "X-Ice-Forwarded"
	// HeaderServer names the server that answered.
	HeaderServer = "X-Ice-Server"
	// HeaderToken carries the secret of the request's ACL token.
	HeaderToken = "X-Ice-Token"
	// HeaderForwardedAgent names the agent a forwarding server saw present
	// its certificate; the leader believes it only from a server.
	HeaderForwardedAgent = "X-Ice-Forwarded-Agent"
)

// UnmarshalJSON decodes a spec strictly (unknown fields are an error, at
// every level) and accepts "plugin" as an object or as the plugin's name
// alone ("plugin": "ticker"), as HCL's plugin = "ticker" does.
func (c *ComponentSpec) UnmarshalJSON(b []byte) error {
	type plainSpec ComponentSpec
	var raw struct {
		plainSpec
		Plugin json.RawMessage `json:"plugin"`
	}
	if err := strictJSON(b, &raw); err != nil {
		return err
	}
	*c = ComponentSpec(raw.plainSpec)
	c.Plugin = fsm.PluginRef{}
	p := bytes.TrimSpace(raw.Plugin)
	switch {
	case len(p) == 0 || bytes.Equal(p, []byte("null")):
		// null is refused below, with the other nulls.
	case p[0] == '"':
		if err := json.Unmarshal(p, &c.Plugin.Name); err != nil {
			return fmt.Errorf("plugin: %w", err)
		}
	case p[0] == '{':
		if err := strictJSON(p, &c.Plugin); err != nil {
			return fmt.Errorf("plugin: %w", err)
		}
	default:
		return fmt.Errorf("plugin: want the plugin's name or an object like {\"name\": \"ticker\"}, got %s", p)
	}
	// "count": null would read as count omitted (the default, 1).
	return checkJSON("spec", b)
}

// CheckText refuses control characters and invalid UTF-8 in the spec's
// strings (see input.go): tab and newline are accepted in config values
// only. ToFSM and ParseSpecFile call it.
func (c *ComponentSpec) CheckText() error {
	pairs := [][2]string{
		{"component name", c.Name},
		{"plugin name", c.Plugin.Name}, {"plugin version", c.Plugin.Version}, {"plugin sha256", c.Plugin.SHA256},
		{"output_pattern", c.OutputPattern},
	}
	if r := c.Restart; r != nil {
		pairs = append(pairs, [2]string{"restart delay", r.Delay}, [2]string{"restart max_delay", r.MaxDelay})
	}
	pairs = append(pairs, capabilityText(c.Capabilities)...)
	pairs = append(pairs, c.memoryText()...)
	for i, k := range c.Constraints {
		what := "constraint " + strconv.Itoa(i)
		pairs = append(pairs, [2]string{what + " label", k.Label}, [2]string{what + " op", k.Op}, [2]string{what + " value", k.Value})
	}
	if err := checkAll(pairs); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(c.Config)) {
		if err := CheckText("config key", k); err != nil {
			return err
		}
		if s, ok := c.Config[k].(string); ok {
			if err := checkLines("config value of key "+quoteShort(k), s); err != nil {
				return err
			}
		}
	}
	return nil
}

// strictJSON decodes one JSON value, refusing unknown fields.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the JSON value at byte %d", dec.InputOffset())
	}
	return nil
}
