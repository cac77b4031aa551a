package devcluster

import (
	"context"
	"fmt"
	"time"

	"github.com/custos-eu/custos/internal/poll"
	"github.com/custos-eu/custos/keysvc/client"
	"github.com/custos-eu/custos/keysvc/identity"
)

// Client returns an API client for the whole cluster with role's certificate.
func (c *Cluster) Client(role identity.Role) (*client.Client, error) {
	return client.New(client.Config{Endpoints: c.Endpoints(), TLSFiles: c.ClientTLS(role), Timeout: 10 * time.Second})
}

// NodeClient returns an API client that talks to node id only.
func (c *Cluster) NodeClient(id string, role identity.Role) (*client.Client, error) {
	n := c.Node(id)
	if n == nil {
		return nil, fmt.Errorf("devcluster: no node %q", id)
	}
	return client.New(client.Config{Endpoints: []string{n.APIURL()}, TLSFiles: c.ClientTLS(role), Timeout: 5 * time.Second})
}

// Up starts every node that is not running: the first (which bootstraps the
// cluster) alone until it is ready, then the others, which join it. It returns
// when every node is ready and a member, or when ctx ends.
func (c *Cluster) Up(ctx context.Context, logf func(format string, a ...any)) error {
	for i, n := range c.Nodes {
		if n.PID != 0 && alive(n.PID) {
			logf("%s already running (pid %d)", n.ID, n.PID)
			continue
		}
		if err := c.Start(n.ID); err != nil {
			return err
		}
		logf("started %s (region %s, API %s, pid %d)", n.ID, n.Region, n.APIURL(), n.PID)
		if i == 0 {
			if err := c.WaitReady(ctx, n.ID); err != nil {
				return err
			}
		}
	}
	for _, n := range c.Nodes {
		if err := c.WaitMember(ctx, n.ID); err != nil {
			return err
		}
	}
	logf("all %d nodes are ready and members of cluster %q", len(c.Nodes), c.Name)
	return nil
}

// WaitReady waits until node id answers its health check as ready.
func (c *Cluster) WaitReady(ctx context.Context, id string) error {
	cl, err := c.NodeClient(id, identity.RoleOperator)
	if err != nil {
		return err
	}
	defer cl.Close()
	err = poll.Until(ctx, 100*time.Millisecond, func() error {
		if n := c.Node(id); n.PID != 0 && !alive(n.PID) {
			return poll.Stop(fmt.Errorf("%s exited; see %s", id, c.LogPath(id)))
		}
		_, err := cl.Health(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("devcluster: waiting for %s to be ready: %w", id, err)
	}
	return nil
}

// WaitMember waits until node id is ready and a registered voter in its own
// view of the cluster.
func (c *Cluster) WaitMember(ctx context.Context, id string) error {
	if err := c.WaitReady(ctx, id); err != nil {
		return err
	}
	cl, err := c.NodeClient(id, identity.RoleOperator)
	if err != nil {
		return err
	}
	defer cl.Close()
	err = poll.Until(ctx, 100*time.Millisecond, func() error {
		st, err := cl.Cluster(ctx)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.ID == id && m.Voter && m.Registered {
				return nil
			}
		}
		return fmt.Errorf("%s is not yet a registered voter", id)
	})
	if err != nil {
		return fmt.Errorf("devcluster: waiting for %s to join: %w", id, err)
	}
	return nil
}
