/*
 * fuzz_dataset.c — dataset JSONL files (iapo_dataset_load): the input is the
 * file, read as every layout in turn: auto-detected with duplicates dropped,
 * GSM8K, MATH, DAPO and generic, and generic with dotted field names
 * ("extra_info.question" / "extra_info.answer") and a row limit of 2. A
 * dataset that loads is then split (a quarter for evaluation) and subset.
 * Oracles besides the sanitizers: a loaded dataset has at least one row,
 * every row a prompt and a label, a concrete format, and no more rows than
 * the limit; the split's halves add up to it.
 * Not here: prompts rendered through a chat template (fuzz_chat.c).
 */
#include "fuzz.h"
#include "rl/dataset.h"

static void check(const iapo_dataset_opts *o)
{
	char path[1024];
	iapo_dataset ds;
	fz_path("data.jsonl", path, sizeof path);
	fz_begin();
	if (fz_status(iapo_dataset_load(path, o, &ds), "dataset_load") != IAPO_OK) {
		FZ_ASSERT(ds.n == 0 && ds.ex == NULL, "a failed load kept rows");
		return;
	}
	FZ_ASSERT(ds.n > 0 && ds.format != IAPO_DATA_AUTO, "%zu rows, format %d", ds.n, ds.format);
	FZ_ASSERT(!o->max_rows || ds.n <= o->max_rows, "%zu rows over the limit", ds.n);
	FZ_ASSERT(o->format == IAPO_DATA_AUTO || ds.format == o->format, "format %d asked, %d read", o->format, ds.format);
	for (size_t i = 0; i < ds.n; i++) FZ_ASSERT(ds.ex[i].prompt && ds.ex[i].label, "row %zu", i);
	iapo_dataset tr, ev, sub;
	fz_begin();
	if (fz_status(iapo_dataset_split(&ds, 0.25, 0, 7, &tr, &ev), "split") == IAPO_OK) {
		FZ_ASSERT(tr.n + ev.n == ds.n, "split %zu + %zu of %zu", tr.n, ev.n, ds.n);
		iapo_dataset_free(&tr);
		iapo_dataset_free(&ev);
	}
	size_t idx[2] = {ds.n - 1, 0};
	fz_begin();
	if (fz_status(iapo_dataset_subset(&ds, idx, 2, &sub), "subset") == IAPO_OK) iapo_dataset_free(&sub);
	iapo_dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_write("data.jsonl", data, size);
	static const iapo_data_format formats[] = {IAPO_DATA_GSM8K, IAPO_DATA_MATH, IAPO_DATA_DAPO, IAPO_DATA_GENERIC};
	iapo_dataset_opts o = {.format = IAPO_DATA_AUTO, .dedupe = 1};
	check(&o);
	for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
		o = (iapo_dataset_opts){.format = formats[i]};
		check(&o);
	}
	o = (iapo_dataset_opts){.format = IAPO_DATA_GENERIC, .prompt_field = "extra_info.question",
				.answer_field = "extra_info.answer", .max_rows = 2};
	check(&o);
	return 0;
}
