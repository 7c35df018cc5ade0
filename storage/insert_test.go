package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestInsertContextIsNeverDoneAfterRelease(t *testing.T) {
	t.Parallel()
	deadline := time.Now().Add(time.Hour)
	tests := []struct {
		name        string
		cancelFirst bool // cancel the parent before release, i.e. while the insert runs
		wantErr     error
	}{
		{"cancelled during the insert", true, context.Canceled},
		{"cancelled after the insert", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent, cancel := context.WithDeadline(context.WithValue(context.Background(), ctxKey{}, "v"), deadline)
			ictx := newInsertContext(parent)
			if d, ok := ictx.Deadline(); !ok || !d.Equal(deadline) {
				t.Fatalf("Deadline() = %v, %v; want the parent's", d, ok)
			}
			if ictx.Value(ctxKey{}) != "v" {
				t.Fatal("the parent's values are lost")
			}
			if ictx.Err() != nil {
				t.Fatalf("Err() = %v before anything happened", ictx.Err())
			}
			if tc.cancelFirst {
				cancel()
				select {
				case <-ictx.Done():
				case <-time.After(5 * time.Second):
					t.Fatal("the parent's cancellation did not reach the insert")
				}
				ictx.release()
			} else {
				ictx.release()
				cancel()
				// AfterFunc would run its function on a goroutine of its own: give it every chance to.
				time.Sleep(20 * time.Millisecond)
				select {
				case <-ictx.Done():
					t.Fatal("done after release: the driver's watchdog could close a pooled connection")
				default:
				}
			}
			if err := ictx.Err(); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Err() = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
