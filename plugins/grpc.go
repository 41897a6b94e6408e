package plugins

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

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
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the component's gRPC service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("serve component plugin: no implementation")
	}
	proto.RegisterComponentServer(s, &grpcServer{impl: p.Impl, link: p.Link})
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
)

func (c *grpcClient) Info(ctx context.Context) (Info, error) {
	resp, err := c.client.Info(ctx, &proto.InfoRequest{})
	if err != nil {
		return Info{}, fmt.Errorf("plugin info: %w", err)
	}
	return Info{Name: resp.Name, Version: resp.Version, Kind: Kind(resp.Kind)}, nil
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
	resp, err := c.client.Execute(ctx, &proto.ExecuteRequest{Input: input})
	if err != nil {
		return "", fmt.Errorf("plugin execute: %w", err)
	}
	return resp.Output, nil
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
}

var _ proto.ComponentServer = (*grpcServer)(nil)

func (s *grpcServer) Info(ctx context.Context, _ *proto.InfoRequest) (*proto.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, err
	}
	return &proto.InfoResponse{Name: info.Name, Version: info.Version, Kind: proto.Kind(info.Kind)}, nil
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

func (s *grpcServer) Execute(ctx context.Context, req *proto.ExecuteRequest) (*proto.ExecuteResponse, error) {
	out, err := s.impl.Execute(ctx, req.Input)
	if err != nil {
		return nil, err
	}
	return &proto.ExecuteResponse{Output: out}, nil
}

func (s *grpcServer) Stop(ctx context.Context, req *proto.StopRequest) (*proto.StopResponse, error) {
	if err := s.impl.Stop(ctx, time.Unix(0, req.DeadlineUnixNano)); err != nil {
		return nil, err
	}
	return &proto.StopResponse{}, nil
}
