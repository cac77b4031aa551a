package keysvc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
)

// PeerCallRaw sends body, as is, as call name from node from to node to
// over the peer channel (what a faulty or hostile peer could send), and
// returns the answer's HTTP status and, for a refusal, its code and
// message.
func PeerCallRaw(ctx context.Context, from, to *Node, name string, body []byte) (status int, code, msg string, err error) {
	conn, err := from.raft.DialPeer(ctx, to.raft.Addr())
	if err != nil {
		return 0, "", "", err
	}
	defer conn.Close()
	used := false
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(context.Context, string, string) (net.Conn, error) {
		if used {
			return nil, net.ErrClosed
		}
		used = true
		return conn, nil
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+to.cfg.NodeID+"/"+name, bytes.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", "", err
	}
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "", "", nil
	}
	var eb struct{ Code, Message string }
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb.Code, eb.Message, nil
}
