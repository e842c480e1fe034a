package outbox_test

import (
	"os/exec"
	"strings"
	"testing"
)

// A program that imports natsclient but not outbox must not compile bbolt.
func TestCoreDoesNotImportStorage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/c360/natsclient").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "go.etcd.io/bbolt") || strings.HasPrefix(dep, "github.com/c360/natsclient/outbox") {
			t.Errorf("the core package depends on %s", dep)
		}
	}
}
