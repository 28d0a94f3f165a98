package admin

import "time"

func sinceSeconds(t time.Time) float64 { return time.Since(t).Seconds() }
