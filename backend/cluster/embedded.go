package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NodeConfig configures an embedded NATS server with JetStream.
type NodeConfig struct {
	// Name identifies the node in its cluster (required with Routes).
	Name string
	// Host and Port are where clients connect (default 127.0.0.1, and a
	// free port when Port is 0).
	Host string
	Port int
	// StoreDir holds JetStream's files (required). StartNode locks it
	// (StoreDir/reword.lock) while the node runs: two servers writing the
	// same JetStream files would corrupt them.
	StoreDir string
	// InProcess opens no TCP port: clients connect only from this process,
	// through Connect. A process that runs gateway and workers itself
	// (reword serve --role all) needs nothing more, and exposes nothing.
	InProcess bool
	// ClusterName, ClusterPort and Routes join a NATS cluster: the port
	// other nodes route to, and the route URLs (nats://host:port) of the
	// other nodes. Empty Routes means a single node.
	ClusterName string
	ClusterPort int
	Routes      []string
}

// Node is an embedded NATS server.
type Node struct {
	srv    *natsserver.Server
	unlock func()
}

// StartNode starts an embedded NATS server with JetStream and waits until
// it accepts connections.
func StartNode(cfg NodeConfig) (*Node, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("cluster: an embedded NATS server needs a JetStream store folder")
	}
	if cfg.InProcess && len(cfg.Routes) > 0 {
		return nil, errors.New("cluster: an in-process NATS node cannot join a cluster (routes need a port)")
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: creating the JetStream folder: %w", err)
	}
	unlock, err := lockDir(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	n, err := startNode(cfg)
	if err != nil {
		unlock()
		return nil, err
	}
	n.unlock = unlock
	return n, nil
}

// nodeReadyWait bounds how long a node may take to accept connections.
// A clustered node with JetStream on a loaded 2-core machine (the race
// detector on, other jobs beside it) has taken more than 10 s; a node
// that is not up in 30 s is broken, not slow.
const nodeReadyWait = 30 * time.Second

func startNode(cfg NodeConfig) (*Node, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	port := cfg.Port
	switch {
	case cfg.InProcess:
		// Nothing listens; the port only appears in the URL that
		// in-process clients are given (and never dial).
		port = natsserver.DEFAULT_PORT
	case port == 0:
		port = natsserver.RANDOM_PORT
	}
	opts := &natsserver.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.InProcess,
	}
	if len(cfg.Routes) > 0 {
		if cfg.Name == "" || cfg.ClusterName == "" || cfg.ClusterPort == 0 {
			return nil, errors.New("cluster: a clustered NATS node needs a name, a cluster name and a cluster port")
		}
		opts.Cluster = natsserver.ClusterOpts{Name: cfg.ClusterName, Host: cfg.Host, Port: cfg.ClusterPort}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("cluster: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	srv, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: configuring NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(nodeReadyWait) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("cluster: embedded NATS %q did not accept connections within %v", cfg.Name, nodeReadyWait)
	}
	return &Node{srv: srv}, nil
}

// ClientURL is the nats:// URL clients connect to (meaningless for an
// InProcess node: use Connect).
func (n *Node) ClientURL() string { return n.srv.ClientURL() }

// Connect opens a client connection to the node inside this process,
// without TCP; it works whether the node listens or not.
func (n *Node) Connect(opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(n.srv.ClientURL(), append(opts, nats.InProcessServer(n.srv))...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to the embedded NATS: %w", err)
	}
	return nc, nil
}

// Shutdown stops the server, waits until it has, and releases its
// JetStream folder. Safe to call more than once.
func (n *Node) Shutdown() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	if n.unlock != nil {
		n.unlock()
		n.unlock = nil
	}
}

// LocalCluster is a NATS cluster of embedded nodes on loopback, for tests,
// benchmarks and trying the cluster on one machine.
type LocalCluster struct {
	Nodes []*Node
}

// StartLocalCluster starts n clustered JetStream nodes on 127.0.0.1, each
// storing under dir/<node name>.
func StartLocalCluster(n int, dir string) (*LocalCluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("cluster: a local cluster needs at least one node, got %d", n)
	}
	if n == 1 {
		// One clustered node would wait forever for JetStream peers.
		node, err := StartNode(NodeConfig{Name: "reword-1", StoreDir: dir + "/reword-1"})
		if err != nil {
			return nil, err
		}
		return &LocalCluster{Nodes: []*Node{node}}, nil
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, "nats://127.0.0.1:"+strconv.Itoa(p))
	}
	c := &LocalCluster{}
	for i := range n {
		name := "reword-" + strconv.Itoa(i+1)
		node, err := StartNode(NodeConfig{
			Name: name, StoreDir: dir + "/" + name,
			ClusterName: "reword", ClusterPort: ports[i], Routes: routes,
		})
		if err != nil {
			c.Shutdown()
			return nil, err
		}
		c.Nodes = append(c.Nodes, node)
	}
	return c, nil
}

// URLs is the comma-separated client URL list of every node, which
// nats.Connect takes to fail over between them.
func (c *LocalCluster) URLs() string {
	s := ""
	for i, n := range c.Nodes {
		if i > 0 {
			s += ","
		}
		s += n.ClientURL()
	}
	return s
}

// Shutdown stops every node.
func (c *LocalCluster) Shutdown() {
	for _, n := range c.Nodes {
		n.Shutdown()
	}
}

// freePorts asks the kernel for n free loopback ports. Routes must be
// known before the nodes start, so the ports are reserved and released;
// another process could take one in between, which StartNode then reports.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cluster: finding a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
