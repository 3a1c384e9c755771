package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"

	"github.com/tapefs/tapefs/archive/errkind"
)

// ErrNoDaemon: nothing listens on the control socket.
var ErrNoDaemon = errors.New("no tapefs daemon is running")

// Error is a refusal from the daemon.
type Error struct {
	Status  int
	Kind    errkind.Kind // what errkind.Table decided the status by
	Message string
}

func (e *Error) Error() string { return e.Message }

// KindOf is the kind of an error of the client: the daemon's refusal, no
// daemon, or (anything else) a failure.
func KindOf(err error) errkind.Kind {
	var ae *Error
	switch {
	case err == nil:
		return errkind.OK
	case errors.Is(err, ErrNoDaemon):
		return errkind.NoDaemon
	case errors.As(err, &ae):
		return ae.Kind
	}
	return errkind.Internal
}

// Exit codes of the command line, from the one error table.
const (
	ExitOK       = errkind.ExitOK
	ExitFailed   = errkind.ExitFailed
	ExitPartial  = errkind.ExitPartial
	ExitNoDaemon = errkind.ExitNoDaemon
	ExitUsage    = errkind.ExitUsage
)

// ExitCode is the command line's exit code for an error, from the one
// table (archive/errkind) the daemon's status came from.
func ExitCode(err error) int { return errkind.Of(KindOf(err)).Exit }

// Client talks to a daemon over its control socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client of the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 64,
	}
	return &Client{Socket: socket, hc: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, method, path, query, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("tapefs daemon sent a malformed answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send makes a request and turns transport failures and error statuses
// into errors; the caller closes the body of a successful response.
func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader, ctype string) (*http.Response, error) {
	u := "http://tapefs" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("%w (socket %s)", ErrNoDaemon, c.Socket)
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		kind := errkind.Kind(e.Kind)
		if _, known := errkind.Table[kind]; !known || kind == errkind.OK {
			kind = errkind.FromHTTP(resp.StatusCode)
		}
		return nil, &Error{Status: resp.StatusCode, Kind: kind, Message: e.Error}
	}
	return resp, nil
}

// Workspaces lists the workspaces the caller may see.
func (c *Client) Workspaces(ctx context.Context) ([]Workspace, error) {
	var out []Workspace
	return out, c.do(ctx, "GET", "/v1/workspaces", nil, nil, &out)
}

// CreateWorkspace creates a workspace (root only).
func (c *Client) CreateWorkspace(ctx context.Context, req WorkspaceRequest) error {
	return c.do(ctx, "POST", "/v1/workspaces", nil, req, nil)
}

// SetQuota sets a workspace's quota (root only).
func (c *Client) SetQuota(ctx context.Context, ws string, quota int64) error {
	return c.do(ctx, "POST", "/v1/workspaces/"+url.PathEscape(ws)+"/quota", nil, QuotaRequest{Quota: quota}, nil)
}

// SetCopies sets a workspace's copies policy (root only; 0: the daemon's
// default) and returns the workspace.
func (c *Client) SetCopies(ctx context.Context, ws string, copies int) (Workspace, error) {
	var out Workspace
	return out, c.do(ctx, "POST", "/v1/workspaces/"+url.PathEscape(ws)+"/copies", nil, CopiesRequest{Copies: copies}, &out)
}

// SetCartridge changes a cartridge's state or pool (root only).
func (c *Client) SetCartridge(ctx context.Context, volser string, req CartridgeRequest) (CartridgeResponse, error) {
	var out CartridgeResponse
	return out, c.do(ctx, "POST", "/v1/library/cartridges/"+url.PathEscape(volser), nil, req, &out)
}

// BatchQuery selects batches to list.
type BatchQuery struct {
	Workspace string
	States    []State
	After     uint64
	Limit     int
	Newest    bool
}

// Batches lists batches.
func (c *Client) Batches(ctx context.Context, q BatchQuery) ([]Batch, error) {
	v := url.Values{}
	if q.Workspace != "" {
		v.Set("workspace", q.Workspace)
	}
	for _, s := range q.States {
		v.Add("state", string(s))
	}
	if q.After != 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Newest {
		v.Set("newest", "1")
	}
	var out []Batch
	return out, c.do(ctx, "GET", "/v1/batches", v, nil, &out)
}

// Batch returns one batch.
func (c *Client) Batch(ctx context.Context, id uint64) (Batch, error) {
	var out Batch
	return out, c.do(ctx, "GET", fmt.Sprintf("/v1/batches/%d", id), nil, nil, &out)
}

// Wait blocks until the batch is on tape or FAILED and returns it.
func (c *Client) Wait(ctx context.Context, id uint64) (Batch, error) {
	var out Batch
	return out, c.do(ctx, "GET", fmt.Sprintf("/v1/batches/%d/wait", id), nil, nil, &out)
}

// Files lists a page of a batch's files (IDs after after).
func (c *Client) Files(ctx context.Context, id, after uint64, limit int) ([]FileInfo, error) {
	v := url.Values{"after": {strconv.FormatUint(after, 10)}, "limit": {strconv.Itoa(limit)}}
	var out []FileInfo
	return out, c.do(ctx, "GET", fmt.Sprintf("/v1/batches/%d/files", id), v, nil, &out)
}

// AllFiles lists every file of a batch.
func (c *Client) AllFiles(ctx context.Context, id uint64) ([]FileInfo, error) {
	var all []FileInfo
	var after uint64
	for {
		page, err := c.Files(ctx, id, after, 10_000)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < 10_000 {
			return all, nil
		}
		after = page[len(page)-1].ID
	}
}

// Reserve registers a CACHING batch for a put.
func (c *Client) Reserve(ctx context.Context, req PutRequest) (Batch, error) {
	var out Batch
	return out, c.do(ctx, "POST", "/v1/batches", nil, req, &out)
}

// Upload sends the tar stream of a reserved batch and returns it sealed.
func (c *Client) Upload(ctx context.Context, id uint64, tarStream io.Reader) (Batch, error) {
	resp, err := c.send(ctx, "PUT", fmt.Sprintf("/v1/batches/%d/data", id), nil, tarStream, "application/x-tar")
	if err != nil {
		return Batch{}, err
	}
	defer resp.Body.Close()
	var out Batch
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Remove soft-deletes a batch.
func (c *Client) Remove(ctx context.Context, id uint64) (RemoveResponse, error) {
	var out RemoveResponse
	return out, c.do(ctx, "POST", fmt.Sprintf("/v1/batches/%d/remove", id), nil, struct{}{}, &out)
}

// Undelete restores a soft-deleted batch.
func (c *Client) Undelete(ctx context.Context, id uint64) (Batch, error) {
	var out Batch
	return out, c.do(ctx, "POST", fmt.Sprintf("/v1/batches/%d/undelete", id), nil, struct{}{}, &out)
}

// CheckPaths reports which batch paths are already in live batches.
func (c *Client) CheckPaths(ctx context.Context, ws string, paths []string) (map[string]uint64, error) {
	var out PathsResponse
	if err := c.do(ctx, "POST", "/v1/paths/check", nil, PathsRequest{Workspace: ws, Paths: Names(paths)}, &out); err != nil {
		return nil, err
	}
	archived := make(map[string]uint64, len(out.Archived))
	for _, a := range out.Archived {
		archived[string(a.Path)] = a.Batch
	}
	return archived, nil
}

// Recall queues recalls of files or a batch.
func (c *Client) Recall(ctx context.Context, req RecallRequest) error {
	return c.do(ctx, "POST", "/v1/recall", nil, req, nil)
}

// FileData streams a file's bytes (recalled from tape if needed). The
// caller closes the reader; its length is in the response.
func (c *Client) FileData(ctx context.Context, id uint64) (io.ReadCloser, int64, error) {
	resp, err := c.send(ctx, "GET", fmt.Sprintf("/v1/files/%d/data", id), nil, nil, "")
	if err != nil {
		return nil, 0, err
	}
	return resp.Body, resp.ContentLength, nil
}

// Seal seals an entry of put/ now.
func (c *Client) Seal(ctx context.Context, req SealRequest) (Batch, error) {
	var out Batch
	return out, c.do(ctx, "POST", "/v1/seal", nil, req, &out)
}

// Repack queues the repack of a cartridge (root).
func (c *Client) Repack(ctx context.Context, volser string) (Repack, error) {
	var out Repack
	err := c.do(ctx, "POST", "/v1/library/repack", nil, RepackRequest{VOLSER: volser}, &out)
	return out, err
}

// PutEntries lists the entries of put/ that are not batches, of one
// workspace or ("") of every workspace the caller may see, refused ones
// first.
func (c *Client) PutEntries(ctx context.Context, workspace string) ([]PutEntry, error) {
	var out []PutEntry
	v := url.Values{}
	if workspace != "" {
		v.Set("workspace", workspace)
	}
	return out, c.do(ctx, "GET", "/v1/entries", v, nil, &out)
}

// Library reports drives and cartridges.
func (c *Client) Library(ctx context.Context) (LibraryStatus, error) {
	var out LibraryStatus
	return out, c.do(ctx, "GET", "/v1/library", nil, nil, &out)
}

// Evict drops cached objects of a batch on tape (0 = every batch, root).
func (c *Client) Evict(ctx context.Context, batch uint64) (int64, error) {
	var out EvictResponse
	err := c.do(ctx, "POST", "/v1/cache/evict", nil, EvictRequest{Batch: batch}, &out)
	return out.Freed, err
}

// Events returns events after a sequence number.
func (c *Client) Events(ctx context.Context, after uint64, workspace string, limit int) ([]Event, error) {
	v := url.Values{"after": {strconv.FormatUint(after, 10)}, "limit": {strconv.Itoa(limit)}}
	if workspace != "" {
		v.Set("workspace", workspace)
	}
	var out []Event
	return out, c.do(ctx, "GET", "/v1/events", v, nil, &out)
}
