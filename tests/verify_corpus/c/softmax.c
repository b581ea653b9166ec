/* Softmax Jacobians in C as people write them (n is fixed at 4 in each file's tests).
 * The truth is decided in tests/test_verify_corpus.py by central differences. */
#include <math.h>
#include <stdio.h>

#define N 4

static void probabilities(const double *x, double *s)
{
    double top = x[0], total = 0.0;
    int k;
    for (k = 1; k < N; ++k)
        if (x[k] > top)
            top = x[k];
    for (k = 0; k < N; ++k) {
        s[k] = exp(x[k] - top);
        total += s[k];
    }
    for (k = 0; k < N; ++k)
        s[k] /= total;
}

/* Right: max subtracted, s_i (delta_ij - s_j), row-major. */
void jac_stable(const double *x, double *jac)
{
    double s[N];
    int i, j;
    probabilities(x, s);
    for (i = 0; i < N; ++i)
        for (j = 0; j < N; ++j)
            jac[i * N + j] = s[i] * ((i == j) - s[j]);
}

/* Right, but exp(x) without the maximum: overflows near x = 709. */
void jac_naive(const double *x, double *jac)
{
    double e[N], total = 0.0;
    int i, j;
    for (i = 0; i < N; ++i) {
        e[i] = exp(x[i]);
        total += e[i];
    }
    for (i = 0; i < N; ++i)
        for (j = 0; j < N; ++j)
            jac[i * N + j] = (e[i] / total) * ((i == j) - e[j] / total);
}

/* s_j (delta_ij - s_i): the transposed convention, right since J is symmetric. */
void jac_mirrored(const double *x, double *jac)
{
    double s[N];
    int i, j;
    probabilities(x, s);
    for (i = 0; i < N; ++i)
        for (j = 0; j < N; ++j)
            jac[i * N + j] = s[j] * ((i == j) - s[i]);
}

/* Only the diagonal s_i (1 - s_i) is written; the rest is assumed zeroed. */
void jac_diagonal_only(const double *x, double *jac)
{
    double s[N];
    int i;
    probabilities(x, s);
    for (i = 0; i < N; ++i)
        jac[i * N + i] = s[i] * (1.0 - s[i]);
}

/* Writes one entry past the end of jac. */
void jac_overrun(const double *x, double *jac)
{
    double s[N];
    int i, j;
    probabilities(x, s);
    for (i = 0; i < N; ++i)
        for (j = 0; j <= N; ++j)
            jac[i * N + j] = s[i] * ((i == j) - s[j]);
}

/* Prints each call, and is right. */
void jac_chatty(const double *x, double *jac)
{
    printf("jacobian at x0 = %g\n", x[0]);
    jac_stable(x, jac);
}

/* The derivative of softmax with temperature T: 1/T forgotten. */
void jac_temperature_no_factor(const double *x, double T, double *jac)
{
    double z[N], s[N];
    int i, j;
    for (i = 0; i < N; ++i)
        z[i] = x[i] / T;
    probabilities(z, s);
    for (i = 0; i < N; ++i)
        for (j = 0; j < N; ++j)
            jac[i * N + j] = s[i] * ((i == j) - s[j]);
}

/* Cross-entropy gradient s - t, given the target t. */
void ce_gradient(const double *x, const double *t, double *grad)
{
    double s[N];
    int k;
    probabilities(x, s);
    for (k = 0; k < N; ++k)
        grad[k] = s[k] - t[k];
}
