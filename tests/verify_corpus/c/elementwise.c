/* Elementwise derivatives in C: n numbers (J's diagonal) or the full n x n matrix. */
#include <math.h>

#define N 4

/* sigma'(x) as 4 numbers. */
void sigmoid_slopes(const double *x, double *d)
{
    int k;
    for (k = 0; k < N; ++k) {
        double y = 1.0 / (1.0 + exp(-x[k]));
        d[k] = y * (1.0 - y);
    }
}

/* sigma'(x) on the diagonal of a zeroed 4 x 4 matrix. */
void sigmoid_matrix(const double *x, double *jac)
{
    int i, j;
    for (i = 0; i < N; ++i)
        for (j = 0; j < N; ++j) {
            double y = 1.0 / (1.0 + exp(-x[i]));
            jac[i * N + j] = (i == j) ? y * (1.0 - y) : 0.0;
        }
}

/* 1 - tanh^2 on the diagonal, written without the zeros. */
void tanh_diagonal_only(const double *x, double *jac)
{
    int i;
    for (i = 0; i < N; ++i) {
        double y = tanh(x[i]);
        jac[i * N + i] = 1.0 - y * y;
    }
}

/* log-softmax: I - s 1^T, the wrong axis. */
void log_softmax_transposed(const double *x, double *jac)
{
    double top = x[0], total = 0.0, s[N];
    int i, j;
    for (i = 1; i < N; ++i)
        if (x[i] > top)
            top = x[i];
    for (i = 0; i < N; ++i) {
        s[i] = exp(x[i] - top);
        total += s[i];
    }
    for (i = 0; i < N; ++i)
        for (j = 0; j < N; ++j)
            jac[i * N + j] = (i == j) - s[i] / total;
}
