package api

import (
	"context"
	"net/http"
	"net/url"
)

// VerifyRequest asks the daemon to check cached objects against the md5
// recorded at sealing: one batch, one workspace, or (neither) every
// workspace the caller may read.
type VerifyRequest struct {
	Batch     uint64 `json:"batch,omitempty"`
	Workspace string `json:"workspace,omitempty"`
}

// DamageReport is one damaged cached object and what was done about it.
type DamageReport struct {
	FileID    uint64 `json:"file_id"`
	Batch     uint64 `json:"batch"`
	Workspace string `json:"workspace"`
	Path      Name   `json:"path"`
	Want      string `json:"md5_sealed"`
	Got       string `json:"md5_found"`
	Action    string `json:"action"`
}

// VerifyReport is what a check of the cache found.
type VerifyReport struct {
	Objects int            `json:"objects"` // complete objects hashed
	Bytes   int64          `json:"bytes"`
	Skipped int            `json:"skipped"` // being recalled, or gone while checked
	Damaged []DamageReport `json:"damaged,omitempty"`
}

// VerifyCache asks the daemon to check cached objects now.
func (c *Client) VerifyCache(ctx context.Context, req VerifyRequest) (VerifyReport, error) {
	var rep VerifyReport
	err := c.do(ctx, http.MethodPost, "/v1/verify/cache", nil, req, &rep)
	return rep, err
}

// TapeVerifyRequest asks the daemon to read back the tape copies of a
// batch, a cartridge or a workspace and compare them with their md5.
type TapeVerifyRequest struct {
	Batch     uint64 `json:"batch,omitempty"`
	VOLSER    string `json:"cartridge,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	// MD5 compares every copy's md5 as well as its CRC32C (slower).
	MD5 bool `json:"md5,omitempty"`
	// Progress names the read-back so that GET /v1/progress/{token}
	// shows how far it got while this request waits.
	Progress string `json:"progress,omitempty"`
}

// WorkProgress is how far a piece of long work got.
type WorkProgress struct {
	What       string `json:"what"`
	Cartridge  string `json:"cartridge,omitempty"`
	Bytes      int64  `json:"bytes"`
	BytesTotal int64  `json:"bytes_total"`
	Files      int    `json:"files"`
	FilesTotal int    `json:"files_total"`
	Done       bool   `json:"done,omitempty"`
}

// Progress asks how far the work named token got.
func (c *Client) Progress(ctx context.Context, token string) (WorkProgress, error) {
	var p WorkProgress
	err := c.do(ctx, http.MethodGet, "/v1/progress/"+url.PathEscape(token), nil, nil, &p)
	return p, err
}

// TapeDamage is one copy on tape that did not read back as sealed.
type TapeDamage struct {
	FileID    uint64 `json:"file_id"`
	Batch     uint64 `json:"batch"`
	Workspace string `json:"workspace"`
	Path      Name   `json:"path"`
	VOLSER    string `json:"cartridge"`
	TapeFile  int    `json:"tape_file"`
	Offset    int64  `json:"offset"`
	Want      string `json:"md5_sealed"`
	Got       string `json:"md5_read,omitempty"`
	WantCRC   string `json:"crc32c_sealed,omitempty"`
	GotCRC    string `json:"crc32c_read,omitempty"`
	Error     string `json:"error,omitempty"`
}

// TapeVerifyReport is what reading back tape copies found.
type TapeVerifyReport struct {
	Files      int          `json:"files"`
	Bytes      int64        `json:"bytes"`
	Cartridges []string     `json:"cartridges"`
	Damaged    []TapeDamage `json:"damaged,omitempty"`
}

// VerifyTape asks the daemon to read back tape copies now; it returns
// when every cartridge in scope has been read.
func (c *Client) VerifyTape(ctx context.Context, req TapeVerifyRequest) (TapeVerifyReport, error) {
	var rep TapeVerifyReport
	err := c.do(ctx, http.MethodPost, "/v1/verify/tape", nil, req, &rep)
	return rep, err
}
