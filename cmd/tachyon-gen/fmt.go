package main

func runFmt(env *cliEnv, args []string) int {
	return env.errorf("fmt: not implemented yet")
}
