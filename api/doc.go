// Package api owns the wire format of the control API of the daemon (HTTP
// with JSON on the Unix socket HOME/tapefs.sock, where the caller is
// identified by SO_PEERCRED) and the Go client the command line uses. The
// server is package api/server. api links nothing of the engine, the
// catalog, the cache or the tape library: the command line imports api
// and config only.
//
// Endpoints (all JSON unless noted; errors are {"error": "...", "kind":
// "..."}, with the status that archive/errkind.Table gives the kind, and
// the command line exits with that table's code):
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
//	POST /v1/library/repack                    RepackRequest: repack a cartridge (root) -> Repack
//	POST /v1/cache/evict                       EvictRequest -> EvictResponse
//	GET  /v1/events?after=&workspace=&limit=   the event log
//	GET  /v1/batches/{id}/access?uid=&gid=&groups=&file=
//	                                           what a caller may do with the batch (Access)
//
// Authorisation is the engine's one rule (archive/access.go), the same for
// the mount and the status page: the manager and members of the
// workspace's group see it; root and the manager put, seal, undelete and
// evict; they and the batch's owner remove it; a file's bytes go to those
// its recorded mode lets read it. Root may do everything and creates
// workspaces.
package api
