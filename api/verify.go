package api

import (
	"context"
	"net/http"
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
