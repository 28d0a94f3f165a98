package admin

import (
	"strings"
	"time"

	"github.com/flockmq/flockmq/cluster"
)

func sinceSeconds(t time.Time) float64 { return time.Since(t).Seconds() }

func lower(s string) string { return strings.ToLower(s) }

func memberState(s cluster.MemberState) string { return s.String() }
