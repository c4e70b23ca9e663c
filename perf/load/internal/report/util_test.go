package report

import "time"

func durUS(us float64) time.Duration { return time.Duration(us * float64(time.Microsecond)) }
