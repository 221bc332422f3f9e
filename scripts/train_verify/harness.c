/* train-verify oracle harness: uses only libdarknet's public API. */
#include "darknet.h"
#include <stdio.h>
#include <stdlib.h>

static float *read_raw(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    float *p = calloc(n, sizeof(float));
    if (fread(p, sizeof(float), n, f) != n) { fprintf(stderr, "short %s\n", path); exit(2); }
    fclose(f);
    return p;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "init")) {
        /* init CFG OUT SEED [SEEN] */
        srand(atoi(argv[4]));
        network *net = parse_network_cfg(argv[2]);
        if (argc > 5) *net->seen = (size_t)atol(argv[5]);
        save_weights(net, argv[3]);
        fprintf(stderr, "INFO inputs %d truths %d batch %d subdiv %d n %d\n", net->inputs, net->truths,
                net->batch, net->subdivisions, net->n);
        return 0;
    }
    if (argc < 9) { fprintf(stderr, "usage: train CFG INIT X.raw Y.raw K OUTDIR SRAND\n"); return 1; }
    network *net;
    if (!strncmp(argv[3], "seed:", 5)) {
        /* Darknet cannot load some layers' weights (deconvolutional: load_convolutional_weights
           divides by l.groups, 0 there): re-create init.weights' state by parsing with the same
           srand seed as "init" did, without load_weights. */
        srand(atoi(argv[3] + 5));
        net = parse_network_cfg(argv[2]);
    } else {
        net = parse_network_cfg(argv[2]);
        load_weights(net, argv[3]);
    }
    int K = atoi(argv[6]);
    int rows = net->batch * net->subdivisions;
    data d = {0};
    d.X.rows = rows; d.X.cols = net->inputs;
    d.y.rows = rows; d.y.cols = net->truths;
    float *xr = read_raw(argv[4], (size_t)rows * net->inputs);
    float *yr = read_raw(argv[5], (size_t)rows * net->truths);
    d.X.vals = calloc(rows, sizeof(float *));
    d.y.vals = calloc(rows, sizeof(float *));
    for (int i = 0; i < rows; ++i) { d.X.vals[i] = xr + (size_t)i * net->inputs; d.y.vals[i] = yr + (size_t)i * net->truths; }
    char buf[4096];
    srand(atoi(argv[8]));
    for (int k = 1; k <= K; ++k) {
        size_t seen_before = *net->seen;
        float rate_before = get_current_rate(net);
        float loss = train_network(net, d);
        float lr_after = get_current_rate(net);
        fprintf(stderr, "CALL %d %zu %.9g %.9g %zu %d %.9g %d\n", k, seen_before, rate_before, loss, *net->seen,
                *net->t, lr_after, net->inputs);
        if (k == 1 || k == K) {
            sprintf(buf, "%s/after_%s.weights", argv[7], k == 1 ? "1" : "K");
            save_weights(net, buf);
        }
    }
    return 0;
}
