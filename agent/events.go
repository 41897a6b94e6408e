package agent

import "github.com/ice-run/ice/fsm"

// event is a message to the supervisor.
type event interface{ isEvent() }

// assignment is the committed runs of this node, from the watch loop.
type assignment struct{ runs []fsm.Run }

// launched: a worker started the run's plugin (not bound to the run yet).
// From now on the supervisor holds the process and alone ends it.
type launched struct {
	run  *localRun
	proc pluginProcess
}

// progressed: a worker moved the run forward. CONTEXT_READY also says that
// the run's record is stored.
type progressed struct {
	run    *localRun
	to     fsm.RunState
	output string
	// report is what the end of an execution (VALIDATING) reports.
	report execReport
	// noRecord: a CONTEXT_READY of a run of a warm process, which
	// has no record.
	noRecord bool
}

// execReport is what the agent reports with the end of a run's execution:
// the record versions served to it and its cost.
type execReport struct {
	reads []fsm.MemoryRef
	cost  map[string]uint64
}

// failed: a worker found that the run failed (start, health, exit,
// execution); it is to be reported ABORTED with the reason.
type failed struct {
	run    *localRun
	reason string
	report execReport
}

// tornDown: a teardown stopped the run's plugin and deleted its record.
type tornDown struct{ run *localRun }

// workerExited: the run's worker returned.
type workerExited struct{ run *localRun }

// inspect runs fn on the supervisor's goroutine, where it may read the
// supervisor's state, and closes done (tests use it to look inside).
type inspect struct {
	fn   func(*supervisor)
	done chan struct{}
}

func (assignment) isEvent()   {}
func (inspect) isEvent()      {}
func (launched) isEvent()     {}
func (progressed) isEvent()   {}
func (failed) isEvent()       {}
func (tornDown) isEvent()     {}
func (workerExited) isEvent() {}
