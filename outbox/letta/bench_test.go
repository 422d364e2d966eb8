package letta_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox/letta"
	"github.com/outboxd/outboxd/outbox/letta/lettatest"
	"github.com/outboxd/outboxd/outbox/outboxtest"
)

// BenchmarkStepSuccess measures Letta's hottest write, a step becoming SUCCESS,
// each in its own transaction, without and with the triggers (which then publish
// agent.step.completed in the same transaction).
//
//	go test ./outbox/letta -run '^$' -bench StepSuccess -count 5
func BenchmarkStepSuccess(b *testing.B) {
	for _, withTriggers := range []bool{false, true} {
		name := "WithoutTriggers"
		if withTriggers {
			name = "WithTriggers"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			pool := outboxtest.NewPool(b, 2)
			suffix := make([]byte, 6)
			_, err := rand.Read(suffix)
			require.NoError(b, err)
			schema, lettaSchema := outboxtest.Schema(b), "letta_"+hex.EncodeToString(suffix)
			require.NoError(b, lettatest.Create(ctx, pool, lettaSchema))
			b.Cleanup(func() {
				_, err := pool.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+lettaSchema+" CASCADE")
				require.NoError(b, err)
			})
			if withTriggers {
				_, err := letta.Install(ctx, pool, &letta.Config{Schema: schema, LettaSchema: lettaSchema})
				require.NoError(b, err)
			}
			_, err = pool.Exec(ctx, fmt.Sprintf(`
				INSERT INTO %[1]s.agents (id, name, organization_id) VALUES ('agent-1', 'a', 'org-1');
				INSERT INTO %[1]s.steps (id, agent_id, organization_id, model, status)
				SELECT 'step-' || g, 'agent-1', 'org-1', 'gpt-4o-mini', 'PENDING' FROM generate_series(1, %[2]d) AS g;
				ANALYZE %[1]s.steps;`, lettaSchema, b.N))
			require.NoError(b, err)
			update := "UPDATE " + lettaSchema + ".steps SET status = 'SUCCESS', prompt_tokens = 1834, completion_tokens = 212, total_tokens = 2046, stop_reason = 'end_turn' WHERE id = $1"

			b.ResetTimer()
			for i := range b.N {
				if _, err := pool.Exec(ctx, update, fmt.Sprintf("step-%d", i+1)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if withTriggers {
				var n int
				require.NoError(b, pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".events").Scan(&n))
				require.Equal(b, b.N, n, "one event per step")
			}
		})
	}
}
