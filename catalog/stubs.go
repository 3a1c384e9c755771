package catalog

import "time"

// Catalog is an open catalog.
type Catalog struct{ eng Engine }

// Tx is a catalog transaction: reads, and writes inside Update.
type Tx struct{ kv KVTxn }

func Open(path string) (*Catalog, error)              { panic("TODO") }
func New(eng Engine) (*Catalog, error)                { panic("TODO") }
func NewMemoryEngine() Engine                         { panic("TODO") }
func OpenBoltEngine(path string) (Engine, error)      { panic("TODO") }
func (c *Catalog) Close() error                       { panic("TODO") }
func (c *Catalog) Update(fn func(tx *Tx) error) error { panic("TODO") }
func (c *Catalog) View(fn func(tx *Tx) error) error   { panic("TODO") }

func (tx *Tx) Workspace(name string) (Workspace, error) { panic("TODO") }
func (tx *Tx) PutWorkspace(w Workspace) error           { panic("TODO") }
func (tx *Tx) Workspaces() ([]Workspace, error)         { panic("TODO") }

func (tx *Tx) Batch(id uint64) (Batch, error)                             { panic("TODO") }
func (tx *Tx) PutBatch(b Batch) error                                     { panic("TODO") }
func (tx *Tx) Batches(o ListOptions) ([]Batch, error)                     { panic("TODO") }
func (tx *Tx) RegisterBatch(b Batch, files []File) (Batch, []File, error) { panic("TODO") }
func (tx *Tx) RemoveBatch(id uint64, now time.Time) (Batch, error)        { panic("TODO") }
func (tx *Tx) UndeleteBatch(id uint64) (Batch, error)                     { panic("TODO") }
func (tx *Tx) PurgeBatch(id uint64) error                                 { panic("TODO") }
func (tx *Tx) FindPath(workspace, path string) ([]uint64, error)          { panic("TODO") }

func (tx *Tx) File(id uint64) (File, error)                                           { panic("TODO") }
func (tx *Tx) PutFile(f File) error                                                   { panic("TODO") }
func (tx *Tx) Lookup(batch, parent uint64, name string) (File, error)                 { panic("TODO") }
func (tx *Tx) Children(batch, parent uint64, after string, limit int) ([]File, error) { panic("TODO") }
func (tx *Tx) Files(batch uint64, after uint64, limit int) ([]File, error)            { panic("TODO") }
func (tx *Tx) CommitAggregate(a AggregateCommit) error                                { panic("TODO") }

func (tx *Tx) Job(id uint64) (Job, error)       { panic("TODO") }
func (tx *Tx) AddJob(j Job) (Job, error)        { panic("TODO") }
func (tx *Tx) PutJob(j Job) error               { panic("TODO") }
func (tx *Tx) DeleteJob(id uint64) error        { panic("TODO") }
func (tx *Tx) Jobs(kind JobKind) ([]Job, error) { panic("TODO") }

func (tx *Tx) AppendEvent(e Event) (Event, error)                                { panic("TODO") }
func (tx *Tx) Events(after uint64, limit int, workspace string) ([]Event, error) { panic("TODO") }
func (tx *Tx) LastEvent() (uint64, error)                                        { panic("TODO") }

func (tx *Tx) Cartridge(volser string) (CartridgeRecord, error) { panic("TODO") }
func (tx *Tx) PutCartridge(c CartridgeRecord) error             { panic("TODO") }
func (tx *Tx) Cartridges() ([]CartridgeRecord, error)           { panic("TODO") }
