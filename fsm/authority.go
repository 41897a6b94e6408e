package fsm

// CommandAuthority says which kinds of actor may issue each command type.
// Finer checks (an agent only for its own node, the lifecycle rules for run
// transitions) are made by the command's apply function.
var CommandAuthority = map[MessageType]ActorKind{
	ComponentPutType:       KindOperator,
	ComponentDeleteType:    KindOperator,
	RunsCreateType:         KindRuntime,
	RunTransitionType:      KindRuntime | KindAgent,
	NodeRegisterType:       KindAgent,
	NodeStatusType:         KindRuntime | KindAgent | KindOperator,
	ComponentFailType:      KindRuntime,
	RunsNoteType:           KindRuntime,
	ClusterInitType:        KindRuntime,
	ACLBootstrapType:       KindOperator,
	ACLPolicyPutType:       KindOperator,
	ACLPolicyDeleteType:    KindOperator,
	ACLTokenCreateType:     KindOperator,
	ACLTokenDeleteType:     KindOperator,
	DigestMarkType:         KindRuntime,
	AlarmRaiseType:         KindRuntime,
	AlarmClearType:         KindRuntime | KindOperator,
	StateGCType:            KindRuntime | KindOperator,
	GrantRequestType:       KindAgent,
	GrantApproveType:       KindOperator,
	GrantDenyType:          KindOperator,
	GrantRevokeType:        KindOperator,
	GrantExpireType:        KindRuntime,
	GrantReleaseType:       KindAgent,
	GrantUseType:           KindAgent,
	SigningKeyRegisterType: KindRuntime,
	SigningKeyRetireType:   KindRuntime | KindOperator,
	ComponentDispatchType:  KindOperator,
	MemoryExpireType:       KindRuntime,
	MemoryDeprecateType:    KindOperator,
	MemoryInvalidateType:   KindOperator,
}

// nodeStatusAuthority says which node statuses each kind of actor may set.
// An agent may only announce that its own node leaves; an operator toggles
// eligibility; the runtime also declares nodes down when leases expire.
var nodeStatusAuthority = map[ActorKind][]NodeStatus{
	KindAgent:    {NodeLeft},
	KindOperator: {NodeReady, NodeDraining, NodeIneligible},
	KindRuntime:  {NodeReady, NodeDraining, NodeIneligible, NodeDown, NodeLeft},
}

func mayProposeTransition(rule Rule, actor Actor, nodeGone bool) bool {
	switch actor.Kind {
	case KindRuntime:
		return rule.By&ByRuntime != 0 || (rule.By&ByRuntimeNodeGone != 0 && nodeGone)
	case KindAgent:
		return rule.By&ByAgent != 0
	}
	return false
}
