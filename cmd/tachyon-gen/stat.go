package main

func runStat(env *cliEnv, args []string) int {
	return env.errorf("stat: not implemented yet")
}
