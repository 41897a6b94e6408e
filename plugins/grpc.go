package plugins

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	protobuf "google.golang.org/protobuf/proto"

	"github.com/ice-run/ice/plugins/proto"
)

// GRPCPlugin is the go-plugin Plugin of a component, over gRPC only.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is the component a plugin process serves (nil in hosts).
	Impl Component
	// Link, in a plugin process, receives the host channel the agent opens
	// (nil: the plugin answers Host with Unimplemented).
	Link *HostLink
	// Cost, in a plugin process, is the run's cost meter, reported with
	// Execute's outcome (nil: no cost).
	Cost *CostMeter
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the component's gRPC service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("serve component plugin: no implementation")
	}
	proto.RegisterComponentServer(s, &grpcServer{impl: p.Impl, link: p.Link, cost: p.Cost})
	return nil
}

// GRPCClient returns a Component that calls the plugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &grpcClient{client: proto.NewComponentClient(c)}, nil
}

// grpcClient is the host side: a Component backed by the gRPC client.
type grpcClient struct {
	client proto.ComponentClient
}

var (
	_ Component  = (*grpcClient)(nil)
	_ HostServer = (*grpcClient)(nil)
	_ Executor   = (*grpcClient)(nil)
)

func (c *grpcClient) Info(ctx context.Context) (Info, error) {
	resp, err := c.client.Info(ctx, &proto.InfoRequest{})
	if err != nil {
		return Info{}, fmt.Errorf("plugin info: %w", err)
	}
	return Info{Name: resp.Name, Version: resp.Version, Kind: Kind(resp.Kind), Reusable: resp.Reusable}, nil
}

func (c *grpcClient) Start(ctx context.Context, req StartRequest) error {
	_, err := c.client.Start(ctx, &proto.StartRequest{
		RunId: req.RunID, Component: req.Component, NodeId: req.NodeID,
		Epoch: req.Epoch, Config: req.Config, LogPath: req.LogPath,
		AgentTimeoutNanos: int64(req.AgentTimeout), ClusterId: req.ClusterID,
	})
	if err != nil {
		return fmt.Errorf("plugin start: %w", err)
	}
	return nil
}

func (c *grpcClient) Health(ctx context.Context) (Health, error) {
	resp, err := c.client.Health(ctx, &proto.HealthRequest{})
	if err != nil {
		return Health{}, fmt.Errorf("plugin health: %w", err)
	}
	return Health{Healthy: resp.Healthy, Message: resp.Message}, nil
}

func (c *grpcClient) Execute(ctx context.Context, input string) (string, error) {
	res, err := c.ExecuteRun(ctx, ExecuteRequest{Input: input})
	return res.Output, err
}

// costTrailer is the trailer key of a failed Execute's cost: an
// ExecuteResponse holding only cost, binary (gRPC base64-encodes "-bin"
// values on the wire).
const costTrailer = "ice-execute-cost-bin"

// ExecuteRun implements Executor.
func (c *grpcClient) ExecuteRun(ctx context.Context, req ExecuteRequest) (ExecuteResult, error) {
	var trailer metadata.MD
	resp, err := c.client.Execute(ctx, &proto.ExecuteRequest{Input: req.Input, Meta: req.Meta}, grpc.Trailer(&trailer))
	if err != nil {
		return ExecuteResult{Cost: costFromTrailer(trailer)}, fmt.Errorf("plugin execute: %w", err)
	}
	return ExecuteResult{Output: resp.Output, Cost: resp.Cost}, nil
}

// costFromTrailer decodes a failed Execute's cost (nil: none, or a
// trailer this build cannot read).
func costFromTrailer(md metadata.MD) map[string]uint64 {
	vals := md.Get(costTrailer)
	if len(vals) == 0 {
		return nil
	}
	var r proto.ExecuteResponse
	if err := protobuf.Unmarshal([]byte(vals[len(vals)-1]), &r); err != nil {
		return nil
	}
	return r.Cost
}

func (c *grpcClient) Stop(ctx context.Context, deadline time.Time) error {
	_, err := c.client.Stop(ctx, &proto.StopRequest{DeadlineUnixNano: deadline.UnixNano()})
	if err != nil {
		return fmt.Errorf("plugin stop: %w", err)
	}
	return nil
}

// grpcServer is the plugin side: the gRPC service backed by a Component.
type grpcServer struct {
	proto.UnimplementedComponentServer
	impl Component
	link *HostLink
	cost *CostMeter
}

var _ proto.ComponentServer = (*grpcServer)(nil)

func (s *grpcServer) Info(ctx context.Context, _ *proto.InfoRequest) (*proto.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, err
	}
	return &proto.InfoResponse{Name: info.Name, Version: info.Version, Kind: proto.Kind(info.Kind), Reusable: info.Reusable}, nil
}

func (s *grpcServer) Start(ctx context.Context, req *proto.StartRequest) (*proto.StartResponse, error) {
	err := s.impl.Start(ctx, StartRequest{
		RunID: req.RunId, Component: req.Component, NodeID: req.NodeId,
		Epoch: req.Epoch, Config: req.Config, LogPath: req.LogPath,
		AgentTimeout: time.Duration(req.AgentTimeoutNanos), ClusterID: req.ClusterId,
	})
	if err != nil {
		return nil, err
	}
	return &proto.StartResponse{}, nil
}

func (s *grpcServer) Health(ctx context.Context, _ *proto.HealthRequest) (*proto.HealthResponse, error) {
	h, err := s.impl.Health(ctx)
	if err != nil {
		return nil, err
	}
	return &proto.HealthResponse{Healthy: h.Healthy, Message: h.Message}, nil
}

// Execute hands the run's meta to the implementation in its context, and
// reports the cost meter's totals with the outcome: in the response, or,
// when Execute failed, in the cost trailer.
func (s *grpcServer) Execute(ctx context.Context, req *proto.ExecuteRequest) (*proto.ExecuteResponse, error) {
	out, err := s.impl.Execute(WithRunMeta(ctx, req.Meta), req.Input)
	cost := s.cost.Totals()
	if err != nil {
		if len(cost) > 0 {
			if b, merr := protobuf.Marshal(&proto.ExecuteResponse{Cost: cost}); merr == nil {
				_ = grpc.SetTrailer(ctx, metadata.Pairs(costTrailer, string(b)))
			}
		}
		return nil, err
	}
	return &proto.ExecuteResponse{Output: out, Cost: cost}, nil
}

func (s *grpcServer) Stop(ctx context.Context, req *proto.StopRequest) (*proto.StopResponse, error) {
	if err := s.impl.Stop(ctx, time.Unix(0, req.DeadlineUnixNano)); err != nil {
		return nil, err
	}
	return &proto.StopResponse{}, nil
}
