// Float softmax / log-softmax rows by intrinsics (simd::Vec), compiled once per SIMD level: activation.cpp
// includes this file with PE_SM_TARGET (the level's target attribute), PE_SM_ISA and PE_SM_NAME(name)
// (name_avx512 / name_avx2) defined. Formulas, masked and non-finite entries: activation.cpp's softmax notes.
//
// forward: the max (two running maxima; a NaN entry is skipped there and makes the row NaN through its
// exp), e = exp(x - m) into y, their sum in double (lanes.h, a pass over the row while it is in L1), then
// y *= 1 / sum (softmax) or y = (x - m) - log(sum) (log). backward: st = sum(dy y) (softmax) or sum(dy)
// (log) in double (lanes.h), then dx = y (dy - st) or dy - e^y st.
// (No include guard: included once per level.)

PE_SM_TARGET void PE_SM_NAME(softmax_fwd_row_f)(const float* x, float* y, index_t C, bool log) {
  using V = simd::Vec<float, PE_SM_ISA>;
  using reg = typename V::reg;
  constexpr index_t W = V::W;
  constexpr float inf = std::numeric_limits<float>::infinity();
  reg m0 = V::set1(-inf), m1 = m0;
  index_t j = 0;
  for (; j + 2 * W <= C; j += 2 * W) {  // max(v, m): the second operand where v is NaN (NaN skipped)
    m0 = V::max(V::load(x + j), m0);
    m1 = V::max(V::load(x + j + W), m1);
  }
  for (; j + W <= C; j += W) m0 = V::max(V::load(x + j), m0);
  float m = V::hmax(V::max(m0, m1));
  for (; j < C; ++j) m = x[j] > m ? x[j] : m;
  if (m == inf) {
    for (index_t k = 0; k < C; ++k) y[k] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  if (m == -inf) m = 0.0f;
  const reg vm = V::set1(m);
  for (j = 0; j + W <= C; j += W) V::store(y + j, V::exp(V::sub(V::load(x + j), vm)));
  if (j < C) {
    const auto k = V::mask_for(static_cast<int>(C - j));
    V::store_part(y + j, k, V::exp(V::sub(V::load_part(x + j, k), vm)));
  }
  const double s = PE_SM_NAME(lanes::dot)<false>(y, y, C);
  if (log) {
    const reg lse = V::set1(static_cast<float>(std::log(s)));
    for (j = 0; j + W <= C; j += W) V::store(y + j, V::sub(V::sub(V::load(x + j), vm), lse));
    for (; j < C; ++j) y[j] = (x[j] - m) - static_cast<float>(std::log(s));
  } else {
    const reg inv = V::set1(static_cast<float>(1.0 / s));
    for (j = 0; j + W <= C; j += W) V::store(y + j, V::mul(V::load(y + j), inv));
    for (; j < C; ++j) y[j] *= static_cast<float>(1.0 / s);
  }
}

PE_SM_TARGET void PE_SM_NAME(softmax_bwd_row_f)(const float* y, const float* dy, float* dx, index_t C, bool log) {
  using V = simd::Vec<float, PE_SM_ISA>;
  using reg = typename V::reg;
  constexpr index_t W = V::W;
  index_t j = 0;
  if (log) {
    const float st = static_cast<float>(PE_SM_NAME(lanes::dot)<false>(dy, dy, C));
    const reg vs = V::set1(st);
    for (; j + W <= C; j += W) V::store(dx + j, V::sub(V::load(dy + j), V::mul(V::exp(V::load(y + j)), vs)));
    if (j < C) {
      const auto k = V::mask_for(static_cast<int>(C - j));
      V::store_part(dx + j, k, V::sub(V::load_part(dy + j, k), V::mul(V::exp(V::load_part(y + j, k)), vs)));
    }
  } else {
    const float st = static_cast<float>(PE_SM_NAME(lanes::dot)<true>(dy, y, C));
    const reg vs = V::set1(st);
    for (; j + W <= C; j += W) V::store(dx + j, V::mul(V::load(y + j), V::sub(V::load(dy + j), vs)));
    for (; j < C; ++j) dx[j] = y[j] * (dy[j] - st);
  }
}
