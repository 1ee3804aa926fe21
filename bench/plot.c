/* SPDX-License-Identifier: MIT */
/*
 * plot.c - the round-trip latency distributions of the two back-ends as an
 * SVG chart: the share of faults (y) served within a time (x, logarithmic),
 * one curve per back-end.  No plotting tool needed: the command writes it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

#define W 720
#define H 420
#define L 70	/* margins */
#define R 20
#define T 40
#define BM 60

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double xpos(double us, double lo, double hi)
{
	return L + (log10(us) - lo) / (hi - lo) * (W - L - R);
}

static void curve(FILE *f, const double *v, size_t n, double lo, double hi, const char *color,
		  const char *name, int row)
{
	double *s;

	if (!n)
		return;
	s = malloc(n * sizeof *s);
	if (!s)
		return;
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp);
	fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
	/* At most 400 points: one per quantile step. */
	for (int k = 0; k <= 400; k++) {
		size_t i = (size_t)((double)k / 400 * (double)(n - 1));
		double us = s[i] / 1000;
		if (us < pow(10, lo))
			us = pow(10, lo);
		fprintf(f, "%.1f,%.1f ", xpos(us, lo, hi),
			T + (H - T - BM) * (1 - (double)(i + 1) / (double)n));
	}
	fprintf(f, "\"/>\n");
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>"
		"<text x=\"%d\" y=\"%d\" font-size=\"13\">%s: median %.1f us, p99 %.1f us (%zu faults)</text>\n",
		L + 20, T + 20 + row * 20, L + 50, T + 20 + row * 20, color, L + 58, T + 25 + row * 20,
		name, s[n / 2] / 1000, s[(size_t)(0.99 * (double)(n - 1))] / 1000, n);
	free(s);
}

int bench_write_svg(FILE *f, const double *k, size_t nk, const double *e, size_t ne)
{
	double lo = 1, hi = 4;	/* 10 us to 10 ms, widened to the data */
	double mn = INFINITY, mx = 0;

	for (size_t i = 0; i < nk; i++) {
		mn = fmin(mn, k[i]);
		mx = fmax(mx, k[i]);
	}
	for (size_t i = 0; i < ne; i++) {
		mn = fmin(mn, e[i]);
		mx = fmax(mx, e[i]);
	}
	if (mx > 0) {
		lo = floor(log10(fmax(mn / 1000, 0.1)));
		hi = ceil(log10(mx / 1000));
		if (hi <= lo)
			hi = lo + 1;
	}
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
	fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\">Round-trip latency per fault "
		"(1 faulting + 1 handler thread, poll + read + UFFDIO_COPY 4 KiB)</text>\n", L - 40);
	/* Whole powers of ten, from floor() to ceil(): exact in a double. */
	/* NOLINTNEXTLINE(cert-flp30-c,clang-analyzer-security.FloatLoopCounter) */
	for (double d = lo; d <= hi + 1e-9; d++) {
		double x = xpos(pow(10, d), lo, hi);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>"
			"<text x=\"%.1f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%g us</text>\n",
			x, T, x, H - BM, x, H - BM + 18, pow(10, d));
	}
	for (int p = 0; p <= 100; p += 25) {
		double y = T + (H - T - BM) * (1 - p / 100.0);
		fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
			"<text x=\"%d\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\">%d%%</text>\n",
			L, y, W - R, y, L - 6, y + 4, p);
	}
	fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" text-anchor=\"middle\">latency of one fault "
		"(log scale)</text>\n", (L + W - R) / 2, H - 18);
	fprintf(f, "<text x=\"16\" y=\"%d\" font-size=\"13\" transform=\"rotate(-90 16 %d)\" "
		"text-anchor=\"middle\">faults served within</text>\n", (T + H - BM) / 2, (T + H - BM) / 2);
	curve(f, k, nk, lo, hi, "#1f77b4", "kernel", 0);
	curve(f, e, ne, lo, hi, "#d62728", "emulated", 1);
	fprintf(f, "</svg>\n");
	return ferror(f) ? -1 : 0;
}
