// Package codeshape holds a test that keeps the tree's files and functions
// small enough to read: no Go file over MaxFileLines lines (generated code
// aside), and no function over MaxFuncLines lines in the core packages.
package codeshape

// Limits the test enforces.
const (
	MaxFileLines = 800
	MaxFuncLines = 100
)

// CorePackages are the folders (relative to the module root) whose every
// function, tests included, must stay within MaxFuncLines.
var CorePackages = []string{"fsm", "cluster", "scheduler", "agent", "api", "rpc", "internal/gossip"}
