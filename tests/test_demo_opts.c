/*
 * test_demo_opts.c — `iapo demo`'s options (src/demo/demo.h): the defaults
 * and the --quick values pass their own check and the quick demo is smaller
 * in every budget; the six methods in table order; each bad value is an ARG
 * error naming its option (seeds, methods, head layout, eval samples, a
 * --set without '=' or naming an unknown method, a --set/--iapo key that is
 * not an `iapo train` option or a value that option refuses) — before any
 * stage runs, so nothing is written (iapo_demo_run on a bad option leaves
 * --out absent).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/status.h"
#include "demo/demo.h"
#include "test.h"

static void test_defaults(void)
{
	iapo_demo_opts d, q;
	iapo_demo_opts_default(&d);
	iapo_demo_opts_quick(&q);
	CHECK(iapo_demo_opts_check(&d) == IAPO_OK, "defaults: %s", iapo_errmsg());
	CHECK(iapo_demo_opts_check(&q) == IAPO_OK, "quick: %s", iapo_errmsg());
	CHECK(q.quick && !d.quick, "quick flag");
	CHECK(q.sft_steps < d.sft_steps && q.rl_steps < d.rl_steps && q.n_train < d.n_train &&
		      q.hidden <= d.hidden && q.eval_problems < d.eval_problems,
	      "quick is smaller");
	CHECK(d.seeds == 1 && !strcmp(d.out, "demo-run"), "seeds %d out %s", d.seeds, d.out);
	const char *want[6] = {"grpo", "iapo", "iapo_no_info", "iapo_refnorm", "iapo_answer_span", "lenpen"};
	CHECK(iapo_demo_method_count() == 6, "count");
	for (int i = 0; i < 6; i++) {
		CHECK(!strcmp(iapo_demo_method_name(i), want[i]), "method %d: %s", i, iapo_demo_method_name(i));
		CHECK(iapo_demo_method_about(i) && *iapo_demo_method_about(i), "about %d", i);
		CHECK(strstr(d.methods, want[i]) != NULL, "default list lacks %s", want[i]);
	}
	CHECK(iapo_demo_method_name(6) == NULL && iapo_demo_method_name(-1) == NULL, "out of range");
}

static void expect_arg(iapo_demo_opts *o, const char *needle, const char *what)
{
	iapo_status st = iapo_demo_opts_check(o);
	CHECK(st == IAPO_ERR_ARG && strstr(iapo_errmsg(), needle), "%s: status %d, message '%s' lacks '%s'", what, st,
	      iapo_errmsg(), needle);
}

static void test_bad(void)
{
	iapo_demo_opts o;
	iapo_demo_opts_quick(&o);
	o.seeds = 0;
	expect_arg(&o, "--seeds", "seeds 0");
	iapo_demo_opts_quick(&o);
	o.methods = "grpo,iapo_fast";
	expect_arg(&o, "iapo_fast", "unknown method");
	o.methods = "";
	expect_arg(&o, "--methods", "empty list");
	iapo_demo_opts_quick(&o);
	o.hidden = 30; /* 4 heads do not divide it */
	expect_arg(&o, "--hidden", "hidden");
	iapo_demo_opts_quick(&o);
	o.kv_heads = 3;
	expect_arg(&o, "--kv-heads", "kv heads");
	iapo_demo_opts_quick(&o);
	o.eval_samples = 0;
	expect_arg(&o, "--eval-samples", "eval samples");
	iapo_demo_opts_quick(&o);
	o.min_steps = 3;
	o.max_steps = 2;
	expect_arg(&o, "steps", "steps");
	iapo_demo_opts_quick(&o);
	o.overrides[o.n_overrides++] = "beta";
	expect_arg(&o, "KEY=VALUE", "--set without =");
	iapo_demo_opts_quick(&o);
	o.overrides[o.n_overrides++] = "ppo:beta=1";
	expect_arg(&o, "ppo", "--set unknown method");
	iapo_demo_opts_quick(&o);
	o.overrides[o.n_overrides++] = "lenpen:lenpen-wait=1";
	expect_arg(&o, "lenpen-wait", "--set unknown option");
	iapo_demo_opts_quick(&o);
	o.overrides[o.n_overrides++] = "temperature=-1";
	expect_arg(&o, "temperature", "--set bad value");
	iapo_demo_opts_quick(&o);
	o.n_iapo_opts = 0;
	o.iapo_opts[o.n_iapo_opts++] = "norm=l3";
	expect_arg(&o, "norm", "--iapo bad value");
	/* valid ones pass, flags take an empty value */
	iapo_demo_opts_quick(&o);
	o.overrides[o.n_overrides++] = "iapo:w-info=2";
	o.overrides[o.n_overrides++] = "dedupe=";
	o.iapo_opts[o.n_iapo_opts++] = "answer-tokens=$SPAN";
	CHECK(iapo_demo_opts_check(&o) == IAPO_OK, "valid overrides: %s", iapo_errmsg());
}

static void test_run_refuses_early(void)
{
	char dir[1024];
	snprintf(dir, sizeof dir, "%s/test_demo_opts-never", test_env("IAPO_TMP", "/tmp"));
	iapo_demo_opts o;
	iapo_demo_opts_quick(&o);
	o.out = dir;
	o.overrides[o.n_overrides++] = "grpo:no-such=1";
	FILE *devnull = fopen("/dev/null", "w");
	int stopped = -1;
	iapo_status st = iapo_demo_run(&o, devnull, devnull, &stopped);
	fclose(devnull);
	struct stat sb;
	CHECK(st == IAPO_ERR_ARG && stat(dir, &sb) != 0, "bad option: status %d, %s %s", st, dir,
	      stat(dir, &sb) == 0 ? "exists" : "absent");
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_bad);
	RUN(test_run_refuses_early);
	TEST_END();
}
