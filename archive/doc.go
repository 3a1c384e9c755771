// Package archive is the engine: it seals put entries into batches, migrates
// them to tape in aggregates, recalls files into the cache, removes and
// undeletes batches, and answers the queries of the layers above (the mount,
// the control API, the status page).
//
// Sealed md5s are checked again at migration, at recall, by a background
// scrub of the cache and on demand (integrity.go).
//
// archive is the only package that coordinates the catalog (the truth), the
// cache (the disk tier) and the tape library. It knows nothing of FUSE or
// HTTP.
//
// The faces above reach it through one door, Surface (surface.go): every
// request carries its Caller, the one access rule (access.go) decides, the
// answers are the engine's own views (view.go), and every error has a kind
// (errors.go) that archive/errkind maps to an errno, an HTTP status and an
// exit code.
package archive
