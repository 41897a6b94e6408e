package rpc

// routeMemory registers the operator API of dispatch and memory records.
func (s *Server) routeMemory() {}
