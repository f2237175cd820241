// A/B of two versions of the attention kernels in one process: calls alternate (new, old, new, ...) on the
// same packed (B, T, 3, H, hd) causal problem, timed by thread CPU time on 1 thread (wall time on more), min
// and median of the rounds; also checks that both give the same bits. On a busy machine, an A/B in one
// process is the only comparison that holds (separate processes differed by 2x minute to minute).
//
//   mkdir -p /tmp/attn_old/old && for f in attention.h attention.cpp attention_impl.h; do
//     git show main:csrc/cpu/$f > /tmp/attn_old/old/$f; done
//   g++ -O3 -std=c++17 -fno-math-errno -fno-trapping-math -fopenmp -DPYENGINE_OPENMP -Icsrc -Icsrc/cpu \
//     -I/tmp/attn_old dev/attn_ab.cpp csrc/common.cpp -o /tmp/attn_ab
//   /tmp/attn_ab B H T hd rounds [threads]      e.g. /tmp/attn_ab 16 4 128 32 40
//
// The old version is compiled into namespace pe::attn_old (a macro renames `attn`).
#include <time.h>
#include <algorithm>
#include <cstdio>
#include <random>
#include <vector>
#include "cpu/attention.cpp"
#define attn attn_old
#include "old/attention.cpp"  // the old version (see above)
#undef attn
static double cpu() { timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static double wall() { timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

template <class Args, class Rows>
void setup(Args& a, float* qkv, float* y, float* lse, float* dy, float* dqkv, int B, int H, int T, int D) {
  a.q = qkv; a.k = qkv + H * D; a.v = qkv + 2 * H * D; a.out = y; a.lse = lse;
  a.dout = dy; a.dq = dqkv; a.dk = dqkv + H * D; a.dv = dqkv + 2 * H * D;
  a.BH = B * H; a.Tq = a.Tk = T; a.D = a.Dv = D; a.H = H;
  Rows in{(pe::index_t)T * 3 * H * D, D, 3 * H * D}, o{(pe::index_t)T * H * D, D, H * D};
  a.q_rows = a.k_rows = a.v_rows = a.dq_rows = a.dk_rows = a.dv_rows = in; a.out_rows = a.dout_rows = o;
  a.causal = true; a.scale = 1.0f / std::sqrt((float)D);
}

int main(int argc, char** argv) {
  int B = atoi(argv[1]), H = atoi(argv[2]), T = atoi(argv[3]), D = atoi(argv[4]), rounds = atoi(argv[5]);
  int threads = argc > 6 ? atoi(argv[6]) : 1;
  pe::set_num_threads(threads);
  auto clk = threads == 1 ? cpu : wall;
  size_t n = (size_t)B * T * 3 * H * D;
  std::vector<float> qkv(n), dy(n / 3), y(n / 3), y2(n / 3), lse(B * H * T), lse2(B * H * T), dqkv(n), dqkv2(n);
  std::mt19937 g(0); std::normal_distribution<float> nd;
  for (auto& x : qkv) x = nd(g);
  for (auto& x : dy) x = nd(g);
  pe::attn::AttnArgs<float> a; pe::attn_old::AttnArgs<float> b;
  setup<decltype(a), pe::attn::Rows>(a, qkv.data(), y.data(), lse.data(), dy.data(), dqkv.data(), B, H, T, D);
  setup<decltype(b), pe::attn_old::Rows>(b, qkv.data(), y2.data(), lse2.data(), dy.data(), dqkv2.data(), B, H, T, D);
  std::vector<double> f[2], bw[2];
  for (int r = 0; r < rounds; ++r) {
    for (int w = 0; w < 2; ++w) {
      double t0 = clk();
      if (w) pe::attn_old::attention_forward(b); else pe::attn::attention_forward(a);
      double t1 = clk();
      if (w) pe::attn_old::attention_backward(b); else pe::attn::attention_backward(a);
      double t2 = clk();
      f[w].push_back(t1 - t0); bw[w].push_back(t2 - t1);
    }
  }
  bool same = y == y2 && dqkv == dqkv2;
  for (auto* v : {&f[0], &f[1], &bw[0], &bw[1]}) std::sort(v->begin(), v->end());
  double pairs = 0; for (int i = 0; i < T; ++i) pairs += i + 1; pairs *= double(B) * H;
  auto md = [](std::vector<double>& v) { return v[v.size() / 2]; };
  printf("B%d H%d T%d hd%d %dt  fwd new %.3f old %.3f ms (min; median %.3f / %.3f) | bwd new %.3f old %.3f (median %.3f / %.3f) | "
         "fwd+bwd old/new min %.2f median %.2f | GF/s new fwd %.0f bwd %.0f | bits %s\n",
         B, H, T, D, threads, f[0][0] * 1e3, f[1][0] * 1e3, md(f[0]) * 1e3, md(f[1]) * 1e3, bw[0][0] * 1e3, bw[1][0] * 1e3,
         md(bw[0]) * 1e3, md(bw[1]) * 1e3, (f[1][0] + bw[1][0]) / (f[0][0] + bw[0][0]),
         (md(f[1]) + md(bw[1])) / (md(f[0]) + md(bw[0])), 4 * pairs * D / f[0][0] / 1e9, 10 * pairs * D / bw[0][0] / 1e9,
         same ? "identical" : "DIFFER");
}
