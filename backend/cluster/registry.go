package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// registryTTL is how long a model stays listed after its last worker's
// last refresh; workers refresh every registryTTL/3.
const registryTTL = 15 * time.Second

// ModelEntry is what a worker publishes about its model, so that gateways
// (which load no model) can greet clients and resolve specs.
type ModelEntry struct {
	Info     protocol.ModelInfo `json:"info"`
	Defaults edit.Defaults      `json:"defaults"`
}

func modelsBucket(ctx context.Context, js jetstream.JetStream, s Settings) (jetstream.KeyValue, error) {
	return retry(ctx, "creating the models bucket", func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      ModelsBucket,
			Description: "models with a live Reword worker",
			TTL:         registryTTL,
			Replicas:    s.Replicas,
		})
	})
}

func putModel(ctx context.Context, kv jetstream.KeyValue, e ModelEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("cluster: encoding the model entry: %w", err)
	}
	if _, err := kv.Put(ctx, SubjectToken(e.Defaults.Model), b); err != nil {
		return fmt.Errorf("cluster: registering model %s: %w", e.Defaults.Model, err)
	}
	return nil
}

// ErrSeveralModels means a spec names no model while several are served;
// ErrUnknownModel that it names one no live worker serves.
var (
	ErrSeveralModels = errors.New("several models are served")
	ErrUnknownModel  = errors.New("no worker serves model")
)

// ErrNoWorkers means no worker has registered a model recently.
var ErrNoWorkers = errors.New("no GPU worker is connected: start `reword serve --role worker` pointed at the same NATS")

// liveModels lists the registered models.
func liveModels(ctx context.Context, kv jetstream.KeyValue) ([]ModelEntry, error) {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: listing models: %w", err)
	}
	var out []ModelEntry
	for key := range lister.Keys() {
		v, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("cluster: reading model %s: %w", key, err)
		}
		var e ModelEntry
		if err := json.Unmarshal(v.Value(), &e); err != nil {
			return nil, fmt.Errorf("cluster: model entry %s is not valid JSON: %w", key, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// forgetOtherModels removes, from a NATS that only ever has one worker,
// what an earlier run serving another model left: that model's
// registration, which would make gateways see two models (and ask specs
// to name one) until it expired, and its waiting jobs, which no worker
// would ever take and which count against the stream's bound.
func forgetOtherModels(ctx context.Context, kv jetstream.KeyValue, stream jetstream.Stream, model string) error {
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("cluster: listing models: %w", err)
	}
	var stale []string
	for key := range lister.Keys() {
		if key != SubjectToken(model) {
			stale = append(stale, key)
		}
	}
	for _, key := range stale {
		if err := kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("cluster: forgetting model %s: %w", key, err)
		}
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(jobSubjectPrefix+"*"))
	if err != nil {
		return fmt.Errorf("cluster: reading the job stream: %w", err)
	}
	for subject := range info.State.Subjects {
		if subject == jobSubject(model) {
			continue
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return fmt.Errorf("cluster: dropping the jobs left on %s: %w", subject, err)
		}
	}
	return nil
}
