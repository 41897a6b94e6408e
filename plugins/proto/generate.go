// Package proto holds the gRPC contract between the ICE agent and component
// plugins (component.proto) and the code protoc generates from it. Edit the
// .proto, then run `go generate ./plugins/proto` (needs protoc,
// protoc-gen-go and protoc-gen-go-grpc); never edit the generated files.
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative component.proto
