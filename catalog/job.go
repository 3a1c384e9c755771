package catalog

import (
	"errors"
	"fmt"
	"strings"
)

// Job returns the job with the ID.
func (tx *Tx) Job(id uint64) (Job, error) {
	var j Job
	found, err := tx.get(jobKey(id), &j)
	if err == nil && !found {
		err = fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	return j, err
}

// AddJob queues a job under a new ID and returns it.
func (tx *Tx) AddJob(j Job) (Job, error) {
	if err := checkJobKind(j.Kind); err != nil {
		return Job{}, err
	}
	id, err := tx.allocate(sequenceJob, 1)
	if err != nil {
		return Job{}, err
	}
	j.ID = id
	return j, tx.writeJob(j)
}

// PutJob replaces an existing job (its attempts, backoff, ...).
func (tx *Tx) PutJob(j Job) error {
	if err := checkJobKind(j.Kind); err != nil {
		return err
	}
	old, err := tx.Job(j.ID)
	if err != nil {
		return fmt.Errorf("put job: %w", err)
	}
	if old.Kind != j.Kind || old.Batch != j.Batch {
		if err := tx.deleteJob(old); err != nil {
			return err
		}
	}
	return tx.writeJob(j)
}

// DeleteJob removes a finished or abandoned job.
func (tx *Tx) DeleteJob(id uint64) error {
	j, err := tx.Job(id)
	if err != nil {
		return err
	}
	return tx.deleteJob(j)
}

// Jobs returns the jobs of a kind ("" = every kind) in ID order, which is
// the order they were queued in.
func (tx *Tx) Jobs(kind JobKind) ([]Job, error) {
	var out []Job
	if kind == "" {
		err := tx.kv.Scan([]byte{tableJob}, nil, false, func(k, v []byte) (bool, error) {
			var j Job
			if err := unmarshal(k, v, &j); err != nil {
				return false, err
			}
			out = append(out, j)
			return true, nil
		})
		return out, err
	}
	err := tx.scanIDs(jobByKindPrefix(kind), nil, false, func(id uint64) (bool, error) {
		j, err := tx.Job(id)
		out = append(out, j)
		return err == nil, err
	})
	return out, err
}

func (tx *Tx) writeJob(j Job) error {
	if err := tx.put(jobKey(j.ID), &j); err != nil {
		return err
	}
	if err := tx.kv.Put(jobByKindKey(j.Kind, j.ID), nil); err != nil {
		return err
	}
	return tx.kv.Put(jobByBatchKey(j.Batch, j.ID), nil)
}

func (tx *Tx) deleteJob(j Job) error {
	for _, k := range [][]byte{jobKey(j.ID), jobByKindKey(j.Kind, j.ID), jobByBatchKey(j.Batch, j.ID)} {
		if err := tx.kv.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// batchJobs returns the jobs of a batch, read before any is deleted.
func (tx *Tx) batchJobs(batch uint64) ([]Job, error) {
	var ids []uint64
	err := tx.scanIDs(jobByBatchPrefix(batch), nil, false, func(id uint64) (bool, error) {
		ids = append(ids, id)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	jobs := make([]Job, 0, len(ids))
	for _, id := range ids {
		j, err := tx.Job(id)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

func checkJobKind(k JobKind) error {
	if k == "" || strings.ContainsRune(string(k), 0) {
		return errors.New("job has no kind (or a kind with NUL)")
	}
	return nil
}
