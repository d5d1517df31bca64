package ctl

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestTestFailures(t *testing.T) {
	step := func(status, name, text string) string { return fmt.Sprintf("\n%-8s %-18s %s", status, name, text) }
	failedOut := "test of C1 on n1: FAILED at destination login" +
		step("ok", "source login", "ftp://u:***@h/v") +
		step("failed", "destination login", "the FTP server refused the login of REMOTE_URL: 530 Login incorrect.") +
		step("", "", "next: check the user and password in REMOTE_URL of C1") +
		step("skipped", "destination list", "needs the destination login")
	rows := []Row{
		{Node: "n1", Code: 256, Output: failedOut},
		{Node: "n2", Code: 0, Output: "test of C1 on n2: ok" + step("ok", "source login", "x")},
		{Node: "n3", Err: errors.New("boom")},
		{Node: "n4", Code: 256, Output: "no connection \"C1\" in the configuration (it has C2)"},
	}
	got := TestFailures(rows)
	want := []string{
		"n1: destination login failed: the FTP server refused the login of REMOTE_URL: 530 Login incorrect.\n    next: check the user and password in REMOTE_URL of C1",
		"n3: boom",
		"n4: no connection \"C1\" in the configuration (it has C2)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("TestFailures:\n%q\nwant\n%q", got, want)
	}
}
