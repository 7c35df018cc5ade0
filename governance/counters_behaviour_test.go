package governance_test

import (
	"testing"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/governance/countertest"
)

func TestMemoryCountersBehaviour(t *testing.T) {
	t.Parallel()
	countertest.Run(t, func(*testing.T) governance.Counters { return governance.NewMemoryCounters() })
}
