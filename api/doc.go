// Package api owns the control API of the daemon: HTTP with JSON on the
// Unix socket HOME/tapefs.sock, where the caller is identified by
// SO_PEERCRED, and the Go client the command line uses.
//
// Endpoints (all JSON unless noted; errors are {"error": "..."} with a
// meaningful status code):
//
//	GET  /v1/workspaces                        workspaces the caller may see
//	POST /v1/workspaces                        create (root): WorkspaceRequest
//	POST /v1/workspaces/{ws}/quota             set quota (root): QuotaRequest
//	GET  /v1/batches?workspace=&state=&after=&limit=&newest=1
//	                                           batches (Status), paged
//	GET  /v1/batches/{id}                      one batch (Status)
//	GET  /v1/batches/{id}/wait                 blocks until on tape or FAILED
//	GET  /v1/batches/{id}/files?after=&limit=  files of a batch (FileInfo), paged
//	POST /v1/batches                           reserve a CLI put: PutRequest -> Status (CACHING)
//	PUT  /v1/batches/{id}/data                 body: a tar stream of the files; seals the batch
//	POST /v1/batches/{id}/remove               soft delete -> RemoveResponse
//	POST /v1/batches/{id}/undelete             -> Status
//	POST /v1/paths/check                       PathsRequest -> PathsResponse (already archived?)
//	POST /v1/recall                            RecallRequest: queue recalls in tape order
//	GET  /v1/files/{id}/data                   a file's bytes (octet-stream), recalled if needed
//	POST /v1/seal                              SealRequest: seal an entry of put/ now
//	GET  /v1/library                           drives and cartridges
//	POST /v1/cache/evict                       EvictRequest -> EvictResponse
//	GET  /v1/events?after=&workspace=&limit=   the event log
//
// Authorisation: a workspace has a manager (uid) and a group (gid). The
// manager may put, rm and undelete; members of the group may list and get;
// nobody else sees the workspace. Root may do everything and creates
// workspaces.
//
// api knows nothing of FUSE; it calls the archive engine.
package api
