package rpc

// routeAgentMemory registers the agent API through which a running
// plugin reads memory records.
func (s *Server) routeAgentMemory() {}
