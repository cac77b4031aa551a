package softhsmtests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/custos-eu/custos/internal/testwait"
	"github.com/custos-eu/custos/keysvc/nodecfg"
)

// `custos dev up` gives every node a health listener and records it in
// DIR/cluster.json as health_addr. A load balancer probing it without a
// certificate sees each node ready, a stopped node gone, and a node that
// lost its quorum (no leader) turn not ready, with no cluster detail in
// any answer.
func TestDevClusterHealthListeners(t *testing.T) {
	c := startCluster(t, 3, nodecfg.RaftTuning{})
	b, err := os.ReadFile(filepath.Join(c.Dir, "cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk struct {
		Nodes []struct {
			ID         string `json:"id"`
			HealthAddr string `json:"health_addr"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(b, &onDisk); err != nil {
		t.Fatal(err)
	}
	addr := map[string]string{}
	for _, n := range onDisk.Nodes {
		if !strings.HasPrefix(n.HealthAddr, "127.0.0.1:") {
			t.Fatalf("cluster.json: %s has health_addr %q", n.ID, n.HealthAddr)
		}
		addr[n.ID] = n.HealthAddr
	}
	if len(addr) != 3 {
		t.Fatalf("cluster.json: %d nodes with a health_addr", len(addr))
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	probe := func(id, path string) (int, string, error) {
		resp, err := hc.Get("http://" + addr[id] + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		for _, n := range c.Nodes { // no node id, API or raft port in any answer
			for _, leak := range []string{n.ID, fmt.Sprint(n.APIPort), fmt.Sprint(n.RaftPort), n.Region} {
				if strings.Contains(string(body), leak) {
					t.Errorf("%s %s answered %q, naming %q", id, path, body, leak)
				}
			}
		}
		return resp.StatusCode, string(body), err
	}
	expect := func(id, path string, want int) func() error {
		return func() error {
			code, body, err := probe(id, path)
			if err == nil && code != want {
				err = fmt.Errorf("%s %s: %d %q, want %d", id, path, code, body, want)
			}
			return err
		}
	}
	for id := range addr {
		testwait.Until(t, 60*time.Second, id+" ready", expect(id, "/readyz", 200))
		if err := expect(id, "/livez", 200)(); err != nil {
			t.Error(err)
		}
	}

	if err := c.Stop("node-2", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := probe("node-2", "/livez"); err == nil {
		t.Error("a stopped node's /livez answers")
	}
	if err := expect("node-1", "/readyz", 200)(); err != nil {
		t.Errorf("with one node of three down: %v", err)
	}
	if err := c.Stop("node-3", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// node-1 alone has no quorum: it loses its leader and is not ready,
	// though alive.
	testwait.Until(t, 60*time.Second, "node-1 not ready without a quorum", expect("node-1", "/readyz", 503))
	if err := expect("node-1", "/livez", 200)(); err != nil {
		t.Error(err)
	}
}
