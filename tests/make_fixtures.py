#!/usr/bin/python3
"""Parity fixtures: each mixer written independently in PyTorch from its paper's equations.

For every case this writes tests/fixtures/<case>.json with the inputs x (B, T, D), position ids, the
parameters (named and shaped as mixlab's Params()), the output y, a cotangent dy, and the gradients of
<dy, y> with respect to x and every parameter. tests/mixers/parity_test.cc loads them and matches mixlab within
tolerance. CI does not need PyTorch: the fixtures are committed.

Regenerate (needs Debian's python3-torch: `scripts/setup.sh --torch`):
    /usr/bin/python3 tests/make_fixtures.py              every fixture
    /usr/bin/python3 tests/make_fixtures.py ema_heads4   only the named cases (the others are still drawn, so the
                                                         random stream, and every other fixture, stays as committed)
"""
import json
import math
import os
import sys

import torch

torch.manual_seed(20261123)
torch.set_default_dtype(torch.float64)  # the reference runs in double; mixlab in float
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
ONLY = set(sys.argv[1:])  # case names to write; empty = all


def rope(v, pos, base):
    """v: (B, T, H, dh); rotate pairs (i, i + dh/2) by pos * base^(-2i/dh) (GPT-NeoX 'rotate half')."""
    dh = v.shape[-1]
    half = dh // 2
    inv_freq = base ** (-2.0 * torch.arange(half) / dh)
    ang = pos[..., None].double() * inv_freq  # (B, T, half)
    c, s = torch.cos(ang)[:, :, None, :], torch.sin(ang)[:, :, None, :]
    a, b = v[..., :half], v[..., half:]
    return torch.cat([a * c - b * s, b * c + a * s], dim=-1)


def project(x, p, n_heads):
    """q, k, v = x Wq, x Wk, x Wv, each viewed as (B, T, H, dh)."""
    B, T, _ = x.shape
    return ((x @ p[n]).view(B, T, n_heads, -1) for n in ("wq", "wk", "wv"))


def t5_bucket(n, buckets, max_distance):
    """T5's causal bucket of a distance n >= 0: exact below buckets / 2, then log-spaced up to max_distance."""
    max_exact = buckets // 2
    if n < max_exact:
        return n
    return min(max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (buckets - max_exact)),
               buckets - 1)


def softmax_attention(x, pos, p, n_heads, mode, rope_base=10000.0, allowed=None, t5=None):
    """Vaswani et al. 2017 causal multi-head attention; RoPE (Su et al.) or ALiBi (Press et al.) on request."""
    B, T, D = x.shape
    q, k, v = project(x, p, n_heads)
    HD, dh = n_heads * q.shape[-1], q.shape[-1]
    if mode == "rope":
        q, k = rope(q, pos, rope_base), rope(k, pos, rope_base)
    s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(dh)
    if mode == "alibi":
        slopes = torch.tensor([2.0 ** (-8.0 * (h + 1) / n_heads) for h in range(n_heads)])
        rel = (pos[:, :, None] - pos[:, None, :]).double()  # (B, T, S) query - key
        s = s - slopes[None, :, None, None] * rel[:, None]
    if mode == "t5":  # a learned scalar per head and distance bucket (Raffel et al. 2020), causal bucketing
        buckets, max_distance = t5
        rel = (pos[:, :, None] - pos[:, None, :]).clamp(min=0)  # (B, T, S) query - key; later keys are masked below
        idx = torch.tensor([[[t5_bucket(int(n), buckets, max_distance) for n in row] for row in mat] for mat in rel])
        s = s + p["t5_bias"][:, idx].permute(1, 0, 2, 3)  # (B, H, T, S)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(causal, float("-inf"))
    if allowed is not None:  # (T, T) boolean pattern on top of causality
        s = s.masked_fill(~allowed, float("-inf"))
    a = torch.softmax(s, dim=-1)
    o = torch.einsum("bhts,bshd->bthd", a, v).reshape(B, T, HD)
    return o @ p["wo"]


def linear_attention(x, p, n_heads, feature_map, normalize, eps=1e-6):
    """Katharopoulos et al. 2020, causal: o_t = sum_{s<=t} phi(q_t).phi(k_s) v_s / (sum_{s<=t} phi(q_t).phi(k_s) + eps)."""
    B, T, D = x.shape
    phi = (lambda z: torch.nn.functional.elu(z) + 1) if feature_map == "elu1" else torch.relu
    q, k, v = project(x, p, n_heads)
    q, k = phi(q), phi(k)
    HD = n_heads * q.shape[-1]
    a = torch.einsum("bthd,bshd->bhts", q, k).tril()
    o = torch.einsum("bhts,bshd->bthd", a, v)
    if normalize:
        o = o / (a.sum(-1).transpose(1, 2)[..., None] + eps)
    return o.reshape(B, T, HD) @ p["wo"]


def gated_linear(x, p, n_heads, gate, temperature=16.0):
    """Sequential recurrence S_t = diag(g_t) S_{t-1} + k_t v_t^T, o_t = S_t^T q_t (GLA, Yang et al. 2024;
    RetNet's fixed decay g = 1 - 2^(-5-h); 'none' = plain linear attention)."""
    B, T, D = x.shape
    q, k, v = project(x, p, n_heads)
    HD, dh = n_heads * q.shape[-1], q.shape[-1]
    if gate == "gla":
        g = torch.sigmoid(x @ p["wg1"] @ p["wg2"] + p["bg"]) ** (1.0 / temperature)
        g = g.view(B, T, n_heads, dh)
    elif gate == "retnet":
        g = torch.tensor([1 - 2.0 ** (-5 - h) for h in range(n_heads)])[None, None, :, None].expand(B, T, n_heads, dh)
    else:
        g = torch.ones(B, T, n_heads, dh)
    S = torch.zeros(B, n_heads, dh, dh)
    outs = []
    for t in range(T):
        S = g[:, t, :, :, None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhd,bhde->bhe", q[:, t], S))
    o = torch.stack(outs, 1).reshape(B, T, HD)
    return o @ p["wo"]


def silu(v):
    return v * torch.sigmoid(v)


def mamba(x, p, d_conv, discretization):
    """Gu and Dao 2023, Mamba block, as a plain sequential scan: [xi|z] = x W_in, causal depthwise conv1d, u = silu,
    [dt_low|B|C] = u W_x, dt = softplus(dt_low W_dt + b), A = -exp(A_log), A-bar = exp(dt A), B-bar = (dt A)^-1
    (exp(dt A) - 1) dt B (zoh) or dt B (simplified), h_t = A-bar h_{t-1} + B-bar u_t, y = C.h + D u, out = (y * silu(z)) W_out."""
    B, T, D = x.shape
    E, N = p["A_log"].shape
    R = p["dt_proj_weight"].shape[0]
    xz = x @ p["in_proj"]
    xi, z = xz[..., :E], xz[..., E:]
    xc = torch.nn.functional.conv1d(xi.transpose(1, 2), p["conv_weight"][:, None, :], p["conv_bias"],
                                    padding=d_conv - 1, groups=E)[..., :T].transpose(1, 2)
    u = silu(xc)
    dt_low, Bm, Cm = (u @ p["x_proj"]).split([R, N, N], dim=-1)
    dt = torch.nn.functional.softplus(dt_low @ p["dt_proj_weight"] + p["dt_proj_bias"])
    A = -torch.exp(p["A_log"])
    dtA = dt[..., None] * A  # (B, T, E, N)
    a_bar = torch.exp(dtA)
    b_bar = (torch.expm1(dtA) / A if discretization == "zoh" else dt[..., None]) * Bm[:, :, None, :]
    h = torch.zeros(B, E, N)
    ys = []
    for t in range(T):
        h = a_bar[:, t] * h + b_bar[:, t] * u[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1))
    y = torch.stack(ys, 1) + p["D"] * u
    return (y * silu(z)) @ p["out_proj"]


def ema(x, p, n_heads):
    """Causal exponential moving average per head (mixers/ema.cc, the example mixer): v = x Wv,
    s_t = a_h s_{t-1} + (1 - a_h) v_t with a_h = sigmoid(decay_logit_h), y = s Wo."""
    B, T, D = x.shape
    v = x @ p["wv"]
    a = torch.sigmoid(p["decay_logit"]).repeat_interleave(D // n_heads)  # (D,): head h owns channels h*dh..(h+1)*dh-1
    s, outs = torch.zeros(B, D), []
    for t in range(T):
        s = a * s + (1 - a) * v[:, t]
        outs.append(s)
    return torch.stack(outs, 1) @ p["wo"]


def token_shift(x, mu):
    """RWKV's token shift: mu x_t + (1 - mu) x_{t-1}, x_{-1} = 0."""
    prev = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)
    return x * mu + prev * (1 - mu)


def rwkv(x, p):
    """RWKV-4 time mixing (Peng et al. 2023) by its definition, with no stabilisation (double precision):
    wkv_t = (sum_{i<t} e^{(t-1-i) w + k_i} v_i + e^{u + k_t} v_t) / (same sums without v), w = -exp(time_decay),
    y = (sigmoid(r) * wkv) Wo."""
    B, T, D = x.shape
    k = token_shift(x, p["time_mix_k"]) @ p["wk"]
    v = token_shift(x, p["time_mix_v"]) @ p["wv"]
    r = token_shift(x, p["time_mix_r"]) @ p["wr"]
    w, u = -torch.exp(p["time_decay"]), p["time_first"]
    outs = []
    for t in range(T):
        past = torch.exp((t - 1 - torch.arange(t))[None, :, None] * w + k[:, :t])  # (B, t, C)
        now = torch.exp(u + k[:, t])
        outs.append(((past * v[:, :t]).sum(1) + now * v[:, t]) / (past.sum(1) + now))
    return (torch.sigmoid(r) * torch.stack(outs, 1)) @ p["wo"]


def rwkv_ffn(x, p):
    """RWKV channel mixing: sigmoid(shift_r(x) Wr) * (relu(shift_k(x) Wk)^2 Wv)."""
    k = torch.relu(token_shift(x, p["time_mix_k"]) @ p["wk"]) ** 2
    return torch.sigmoid(token_shift(x, p["time_mix_r"]) @ p["wr"]) * (k @ p["wv"])


def s4d(x, p):
    """S4D (Gu et al. 2022) by its definition: K[l] = 2 Re sum_n C_n B_n (exp(dt A_n) - 1) / A_n exp(dt A_n l) with
    A = -exp(a_re) + i a_im, dt = exp(log_dt); y = causal sum_s K[t-s] u_s + D u_t with u = x Win; out = y Wo."""
    B, T, D = x.shape
    u = x @ p["win"]  # (B, T, E)
    A = torch.complex(-torch.exp(p["a_re"]), p["a_im"])  # (E, M)
    dt = torch.exp(p["log_dt"])[:, None]
    Bc = torch.complex(p["b"][..., 0], p["b"][..., 1])
    Cc = torch.complex(p["c"][..., 0], p["c"][..., 1])
    coef = Cc * Bc * (torch.exp(dt * A) - 1) / A
    ls = torch.arange(T, dtype=torch.float64)
    K = 2 * (coef[:, :, None] * torch.exp(dt[:, :, None] * A[:, :, None] * ls)).sum(1).real  # (E, T)
    y = torch.stack([sum(K[:, t - s] * u[:, s] for s in range(t + 1)) for t in range(T)], 1)
    return (y + p["d_skip"] * u) @ p["wo"]


def delta_net(x, p, n_heads, temperature=None):
    """DeltaNet (Yang et al. 2024) as the plain delta-rule recurrence, token by token: q, k l2-normalised per head,
    beta = sigmoid(x Wbeta), S_t = alpha_t (S_{t-1} - beta_t k_t (k_t^T S_{t-1})) + beta_t k_t v_t^T, o_t = S_t^T q_t,
    y = o Wo; alpha = 1, or (Gated DeltaNet, given a temperature) sigmoid(x Wg + bg)^(1/temperature)."""
    B, T, D = x.shape
    q, k, v = project(x, p, n_heads)
    dh = q.shape[-1]
    q = q / torch.sqrt((q * q).sum(-1, keepdim=True) + 1e-6)
    k = k / torch.sqrt((k * k).sum(-1, keepdim=True) + 1e-6)
    beta = torch.sigmoid(x @ p["wbeta"])  # (B, T, H)
    alpha = torch.ones_like(beta) if temperature is None else torch.sigmoid(x @ p["wg"] + p["bg"]) ** (1 / temperature)
    S = torch.zeros(B, n_heads, dh, dh)
    outs = []
    for t in range(T):
        kt, vt, bt, at = k[:, t], v[:, t], beta[:, t, :, None], alpha[:, t, :, None, None]
        kS = torch.einsum("bhd,bhde->bhe", kt, S)
        S = at * (S - bt[..., None] * kt[..., :, None] * kS[..., None, :]) + bt[..., None] * kt[..., :, None] * vt[..., None, :]
        outs.append(torch.einsum("bhd,bhde->bhe", q[:, t], S))
    return torch.stack(outs, 1).reshape(B, T, -1) @ p["wo"]


class SplitMixRng:
    """mixlab's Rng (mixers/ops/rng.h): SplitMix64 with uniform and Box-Muller normal draws, so the reference draws the
    same random rotations as the mixer from the same seed."""
    MASK = (1 << 64) - 1

    def __init__(self, seed, stream):
        seed = (seed ^ ((stream * 0xd1b54a32d192ed03 + 0x8cb92ba72f3d8dd7) & self.MASK)) & self.MASK
        self.state = (seed * 0x9e3779b97f4a7c15 + 0x632be59bd9b4e019) & self.MASK

    def next(self):
        z = (self.state + 0x9e3779b97f4a7c15) & self.MASK
        self.state = z
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & self.MASK
        return z ^ (z >> 31)

    def normal(self):
        u1 = 1.0 - (self.next() >> 11) * (1.0 / 9007199254740992.0)
        u2 = (self.next() >> 11) * (1.0 / 9007199254740992.0)
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


def reformer(x, p, n_heads, n_hashes, n_buckets, chunk, seed, layer=0):
    """Causal LSH attention (Kitaev et al. 2020) with mixlab's causal bucketing: shared QK (k = q / |q|), per head and
    round the bucket argmax [q R; -q R]; query i sees, per round, the 2 * chunk most recent positions j <= i of its
    bucket (itself only when alone); the rounds combine into one softmax over the keys counted with multiplicity."""
    B, T, D = x.shape
    q = (x @ p["wq"]).view(B, T, n_heads, -1)
    v = (x @ p["wv"]).view(B, T, n_heads, -1)
    dh = q.shape[-1]
    k = q / q.norm(dim=-1, keepdim=True)
    rng = SplitMixRng(seed * 1000003 + layer, 1)
    half = n_buckets // 2
    rotations = [torch.tensor([[rng.normal() for _ in range(half)] for _ in range(dh)]) for _ in range(n_heads * n_hashes)]
    out = torch.zeros(B, T, n_heads, dh)
    for b in range(B):
        for h in range(n_heads):
            members = [[[] for _ in range(n_buckets)] for _ in range(n_hashes)]
            for i in range(T):
                counts = {}
                for r in range(n_hashes):
                    proj = (q[b, i, h].detach() @ rotations[h * n_hashes + r]).tolist()
                    bucket = max(range(n_buckets), key=lambda j: proj[j] if j < half else -proj[j - half])
                    members[r][bucket].append(i)
                    recent = members[r][bucket][-2 * chunk:]
                    for j in (recent if len(recent) == 1 else [j for j in recent if j != i]):
                        counts[j] = counts.get(j, 0) + 1
                keys = sorted(counts)
                s = torch.stack([q[b, i, h] @ k[b, j, h] for j in keys]) / math.sqrt(dh)
                w = torch.tensor([float(counts[j]) for j in keys]) * torch.exp(s - s.max())
                out[b, i, h] = (w / w.sum()) @ torch.stack([v[b, j, h] for j in keys])
    return out.reshape(B, T, -1) @ p["wo"]


def routing(x, p, n_heads, local_heads, window):
    """Routing Transformer attention (Roy et al. 2021), causal: shared QK (k = q / |q|); the first local_heads heads see
    the last `window` positions, the others the `window` most recent earlier members of their key's nearest centroid."""
    B, T, D = x.shape
    q = (x @ p["wq"]).view(B, T, n_heads, -1)
    v = (x @ p["wv"]).view(B, T, n_heads, -1)
    dh = q.shape[-1]
    k = q / q.norm(dim=-1, keepdim=True)
    out = torch.zeros(B, T, n_heads, dh)
    for b in range(B):
        for h in range(n_heads):
            cluster = (k[b, :, h].detach() @ p["centroids"][h].detach().T).argmax(-1).tolist()
            for i in range(T):
                if h < local_heads:
                    keys = list(range(max(0, i - window + 1), i + 1))
                else:
                    keys = [j for j in range(i + 1) if cluster[j] == cluster[i]][-window:]
                s = torch.stack([q[b, i, h] @ k[b, j, h] for j in keys]) / math.sqrt(dh)
                out[b, i, h] = torch.softmax(s, 0) @ torch.stack([v[b, j, h] for j in keys])
    return out.reshape(B, T, -1) @ p["wo"]


def gelu(v):
    return torch.nn.functional.gelu(v, approximate="tanh")


def moe(x, p, top_k, renormalize, capacity_factor, aux_coef, z_coef):
    """Switch / top-k mixture of GELU-MLP experts (Fedus et al. 2022). Returns the output and the auxiliary loss
    aux_coef * E * sum_e f_e P_e + z_coef * mean(logsumexp(logits)^2); f_e counts assignments (no gradient)."""
    B, T, D = x.shape
    E = p["router"].shape[1]
    xf = x.reshape(B * T, D)
    logits = xf @ p["router"]
    probs = torch.softmax(logits, -1)
    N = xf.shape[0]
    capacity = math.ceil(capacity_factor * N * top_k / E) if capacity_factor > 0 else N * top_k
    counts, load = [0] * E, [0.0] * E
    y = torch.zeros(N, D)
    for t in range(N):
        ranked = sorted(range(E), key=lambda e: (-float(probs[t, e]), e))
        chosen = ranked[:top_k]
        assert float(probs[t, ranked[top_k - 1]] - probs[t, ranked[top_k]]) > 1e-4 if top_k < E else True, "near tie"
        total = sum(probs[t, e] for e in chosen)
        for e in chosen:
            load[e] += 1.0 / (N * top_k)
            if counts[e] >= capacity:
                continue
            counts[e] += 1
            gate = probs[t, e] / total if renormalize else probs[t, e]
            y = y.index_add(0, torch.tensor([t]), (gate * (gelu(xf[t] @ p["w1"][e] + p["b1"][e]) @ p["w2"][e] + p["b2"][e]))[None])
    aux = E * sum(load[e] * probs[:, e].mean() for e in range(E))
    z = (torch.logsumexp(logits, -1) ** 2).mean()
    return y.reshape(B, T, D), aux_coef * aux + z_coef * z


def qkvo_params(D, H, dh, scale=1.0):
    """wq, wk, wv (D, H*dh) and wo (H*dh, D), named and shaped as mixlab's projections."""
    params = {n: scale * torch.randn(D, H * dh) / math.sqrt(D) for n in ("wq", "wk", "wv")}
    params["wo"] = torch.randn(H * dh, D) / math.sqrt(H * dh)
    return params


def write_case(name, mixer, options, pos_mode, x, pos, params, fn, tolerance=None, qk_grad_tolerance=None, kind="sequence"):
    """fn returns y, or (y, auxiliary loss) for mixers whose Backward adds an auxiliary loss's gradient."""
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    x = x.clone().requires_grad_(True)
    out = fn(x, pos, params)
    y, aux = out if isinstance(out, tuple) else (out, torch.zeros(()))
    dy = torch.randn_like(y)
    ((y * dy).sum() + aux).backward()
    flat = lambda t: [float(v) for v in t.detach().reshape(-1)]
    case = {
        "mixer": mixer, "options": options, "pos": pos_mode,
        "B": x.shape[0], "T": x.shape[1], "D": x.shape[2],
        "x": flat(x), "positions": [int(v) for v in pos.reshape(-1)],
        "params": {k: {"shape": list(v.shape), "data": flat(v)} for k, v in params.items()},
        "y": flat(y), "dy": flat(dy), "dx": flat(x.grad),
        # a parameter the output does not depend on differentiably (routing centroids) has gradient zero
        "grads": {k: flat(v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in params.items()},
        "kind": kind, "aux_loss": float(aux),
    }
    if tolerance is not None:
        case["tolerance"] = tolerance
    if qk_grad_tolerance is not None:
        case["qk_grad_tolerance"] = qk_grad_tolerance
    if ONLY and name not in ONLY:
        return
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(case, f)
    print("wrote", name)


def main():
    os.makedirs(OUT, exist_ok=True)
    B, T, D = 2, 11, 16
    for mode in ("none", "rope", "alibi"):
        H, dh = 2, 6  # d_head independent of d_model / n_heads
        params = qkvo_params(D, H, dh)
        x = torch.randn(B, T, D)
        pos = torch.arange(T).repeat(B, 1) + torch.tensor([[0], [3]])  # second sequence starts at position 3
        write_case(f"softmax_{mode}", "softmax", {"n-heads": str(H), "d-head": str(dh), "tile": "4"}, mode, x, pos, params,
                   lambda x, pos, p, mode=mode: softmax_attention(x, pos, p, H, mode))

    for fmap, normalize in (("elu1", True), ("relu", False)):
        H, dh = 2, 6
        params = qkvo_params(D, H, dh)
        x = torch.randn(B, T, D)
        pos = torch.arange(T).repeat(B, 1)
        opts = {"n-heads": str(H), "d-head": str(dh), "feature-map": fmap, "normalize": str(normalize).lower(), "chunk": "4"}
        write_case(f"linear_{fmap}", "linear", opts, "none", x, pos, params,
                   lambda x, pos, p, fmap=fmap, normalize=normalize: linear_attention(x, p, H, fmap, normalize))

    # Longformer-style local window with global prefix tokens, and BigBird block sparsity without the random
    # blocks (whose draw is mixlab's own seeded choice; tiled == naive tests cover it).
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    local = ((i - j) < 3) | (j < 2)
    blk = 2
    sparse = ((i // blk - j // blk) <= 1) | (j // blk < 1)
    for name, mixer, allowed, opts in (
            ("local_window3", "local", local, {"window": "3", "n-global": "2"}),
            ("sparse_block2", "sparse", sparse, {"block": "2", "window-blocks": "1", "global-blocks": "1", "random-blocks": "0"})):
        H, dh = 2, 8
        params = qkvo_params(D, H, dh)
        x = torch.randn(B, T, D)
        pos = torch.arange(T).repeat(B, 1)
        write_case(name, mixer, dict(opts, **{"n-heads": str(H), "tile": "4"}), "rope", x, pos, params,
                   lambda x, pos, p, allowed=allowed: softmax_attention(x, pos, p, H, "rope", allowed=allowed))

    for gate in ("gla", "retnet", "none"):
        H, dh, rank = 2, 6, 3
        params = qkvo_params(D, H, dh)
        if gate == "gla":
            params["wg1"] = torch.randn(D, rank) / math.sqrt(D)
            params["wg2"] = torch.randn(rank, H * dh) / math.sqrt(rank)
            params["bg"] = torch.randn(H * dh) + 3.0
        x = torch.randn(B, T, D)
        pos = torch.arange(T).repeat(B, 1)
        opts = {"n-heads": str(H), "d-head": str(dh), "gate": gate, "gate-rank": str(rank), "chunk": "4"}
        write_case(f"gla_{gate}", "gla", opts, "none", x, pos, params,
                   lambda x, pos, p, gate=gate: gated_linear(x, p, H, gate))

    # Performer's FAVOR+ is an unbiased estimator of the softmax kernel exp(q.k / sqrt(dh)): with many random
    # features its output must approach exact softmax attention (its random draw is mixlab's own, so the
    # reference is the quantity it estimates, at an approximation tolerance).
    for mode in ("none", "rope"):
        H, dh = 2, 8
        params = qkvo_params(D, H, dh, scale=0.5)
        x = torch.randn(B, T, D)
        pos = torch.arange(T).repeat(B, 1)
        write_case(f"performer_{mode}", "performer", {"n-heads": str(H), "n-features": "65536", "chunk": "4"}, mode, x, pos,
                   params, lambda x, pos, p, mode=mode: softmax_attention(x, pos, p, H, mode), tolerance=0.02,
                   qk_grad_tolerance=0.1)  # measured at 65536 features: output 0.6%, dWq/dWk 4-7% (1/sqrt(m) noise)

    # Mamba with step sizes in [0.01, 0.5] (measurable dt gradients) and a perturbed S4D-real A.
    for disc, d_conv, chunk in (("zoh", 3, "4"), ("simplified", 4, "3")):
        E, N, R = 2 * D, 4, 2
        dt = torch.exp(torch.rand(E) * (math.log(0.5) - math.log(0.01)) + math.log(0.01))
        params = {
            "in_proj": torch.randn(D, 2 * E) / math.sqrt(D), "conv_weight": torch.randn(E, d_conv) / math.sqrt(d_conv),
            "conv_bias": 0.1 * torch.randn(E), "x_proj": torch.randn(E, R + 2 * N) / math.sqrt(E),
            "dt_proj_weight": torch.randn(R, E) / math.sqrt(R), "dt_proj_bias": dt + torch.log(-torch.expm1(-dt)),
            "A_log": torch.log(torch.arange(1, N + 1).double()).repeat(E, 1) + 0.1 * torch.randn(E, N),
            "D": torch.randn(E), "out_proj": torch.randn(E, D) / math.sqrt(E)}
        x = torch.randn(B, T, D)
        pos = torch.arange(T).repeat(B, 1)
        opts = {"d-state": str(N), "expand": "2", "d-conv": str(d_conv), "dt-rank": str(R), "discretization": disc, "chunk": chunk}
        write_case(f"mamba_{disc}", "mamba", opts, "none", x, pos, params,
                   lambda x, pos, p, d_conv=d_conv, disc=disc: mamba(x, p, d_conv, disc))

    # Channel mixers. MLP and SwiGLU (Shazeer 2020); MoE with top-2 + capacity drops, and Switch top-1 + z-loss.
    F = 24
    x = torch.randn(B, T, D)
    pos = torch.arange(T).repeat(B, 1)
    params = {"w1": torch.randn(D, F) / math.sqrt(D), "b1": 0.1 * torch.randn(F), "w2": torch.randn(F, D) / math.sqrt(F),
              "b2": 0.1 * torch.randn(D)}
    write_case("mlp_gelu", "mlp", {"d-ff": str(F)}, "none", x, pos, params,
               lambda x, pos, p: gelu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"], kind="channel")
    params = {"w_in": torch.randn(D, 2 * F) / math.sqrt(D), "w_out": torch.randn(F, D) / math.sqrt(F)}
    write_case("swiglu_default", "swiglu", {"d-ff": str(F)}, "none", x, pos, params,
               lambda x, pos, p: (silu((x @ p["w_in"])[..., :F]) * (x @ p["w_in"])[..., F:]) @ p["w_out"], kind="channel")
    for name, E, k, cf, aux_coef, z_coef, renorm in (("moe_top2_capacity", 4, 2, 1.0, 0.5, 0.0, True),
                                                     ("moe_switch_zloss", 4, 1, 0.0, 0.01, 0.1, False)):
        Fe = 8
        params = {"router": 2.0 * torch.randn(D, E) / math.sqrt(D), "w1": torch.randn(E, D, Fe) / math.sqrt(D),
                  "b1": 0.1 * torch.randn(E, Fe), "w2": torch.randn(E, Fe, D) / math.sqrt(Fe), "b2": 0.1 * torch.randn(E, D)}
        opts = {"n-experts": str(E), "top-k": str(k), "d-ff": str(Fe), "capacity-factor": str(cf), "aux-coef": str(aux_coef),
                "z-coef": str(z_coef), "renormalize": str(renorm).lower()}
        write_case(name, "moe", opts, "none", x, pos, params,
                   lambda x, pos, p, k=k, cf=cf, a=aux_coef, zc=z_coef, r=renorm: moe(x, p, k, r, cf, a, zc), kind="channel")

    # The example mixer: four heads with decays spread over (0, 1).
    H = 4
    x = torch.randn(B, T, D)
    pos = torch.arange(T).repeat(B, 1)
    params = {"wv": torch.randn(D, D) / math.sqrt(D), "decay_logit": torch.randn(H), "wo": torch.randn(D, D) / math.sqrt(D)}
    write_case("ema_heads4", "ema", {"n-heads": str(H)}, "none", x, pos, params, lambda x, pos, p: ema(x, p, H))

    # RWKV-4 time mixing and channel mixing, with decays, bonuses and shifts spread as after training.
    x = torch.randn(B, T, D)
    params = {"time_mix_k": torch.rand(D), "time_mix_v": torch.rand(D), "time_mix_r": torch.rand(D),
              "time_decay": torch.randn(D), "time_first": torch.randn(D),
              "wk": torch.randn(D, D) / math.sqrt(D), "wv": torch.randn(D, D) / math.sqrt(D),
              "wr": torch.randn(D, D) / math.sqrt(D), "wo": torch.randn(D, D) / math.sqrt(D)}
    write_case("rwkv_default", "rwkv", {}, "none", x, pos, params, lambda x, pos, p: rwkv(x, p))
    params = {"time_mix_k": torch.rand(D), "time_mix_r": torch.rand(D), "wk": torch.randn(D, F) / math.sqrt(D),
              "wv": torch.randn(F, D) / math.sqrt(F), "wr": torch.randn(D, D) / math.sqrt(D)}
    write_case("rwkv-ffn_default", "rwkv-ffn", {"d-ff": str(F)}, "none", x, pos, params, lambda x, pos, p: rwkv_ffn(x, p),
               kind="channel")

    # Softmax attention with T5's relative bias: 8 buckets (4 exact, 4 log-spaced up to distance 10) over T = 11.
    H, dh = 2, 6
    x = torch.randn(B, T, D)
    params = qkvo_params(D, H, dh)
    params["t5_bias"] = torch.randn(H, 8)
    write_case("softmax_t5", "softmax", {"n-heads": str(H), "d-head": str(dh), "tile": "4", "t5-buckets": "8",
                                         "t5-max-distance": "10"}, "t5", x, pos, params,
               lambda x, pos, p: softmax_attention(x, pos, p, H, "t5", t5=(8, 10)))

    # S4D with trained-looking parameters: decays, frequencies and step sizes spread, complex B and C.
    M = 3
    x = torch.randn(B, T, D)
    params = {"win": torch.randn(D, D) / math.sqrt(D), "log_dt": torch.log(0.05 + 0.4 * torch.rand(D)),
              "a_re": torch.log(0.2 + torch.rand(D, M)), "a_im": 3 * torch.randn(D, M), "b": torch.randn(D, M, 2),
              "c": torch.randn(D, M, 2) / math.sqrt(2), "d_skip": torch.randn(D), "wo": torch.randn(D, D) / math.sqrt(D)}
    for impl in ("fft", "naive"):
        write_case(f"s4d_{impl}", "s4d", {"d-state": str(2 * M), "impl": impl}, "none", x, pos, params,
                   lambda x, pos, p: s4d(x, p))

    # DeltaNet in the chunked WY form (chunks of 4 over T = 11) against the token-by-token delta rule.
    H, dh = 2, 6
    x = torch.randn(B, T, D)
    params = qkvo_params(D, H, dh)
    params["wbeta"] = torch.randn(D, H) / math.sqrt(D)
    write_case("delta_chunk4", "delta", {"n-heads": str(H), "d-head": str(dh), "chunk": "4"}, "none", x, pos, params,
               lambda x, pos, p: delta_net(x, p, H))
    # Gated DeltaNet: decays spread well below 1 (temperature 2), so the chunked form's decay factors matter.
    params = dict(params, wg=torch.randn(D, H) / math.sqrt(D), bg=torch.randn(H))
    write_case("delta_gated", "delta", {"n-heads": str(H), "d-head": str(dh), "chunk": "4", "gate": "true",
                                        "gate-temperature": "2"}, "none", x, pos, params,
               lambda x, pos, p: delta_net(x, p, H, temperature=2.0))

    # Reformer LSH attention: 2 rounds of 4 buckets, windows of 2 * 2 keys, rotations drawn from seed 0.
    H, dh = 2, 6
    x = torch.randn(B, T, D)
    params = {"wq": torch.randn(D, H * dh) / math.sqrt(D), "wv": torch.randn(D, H * dh) / math.sqrt(D),
              "wo": torch.randn(H * dh, D) / math.sqrt(H * dh)}
    write_case("reformer_hashes2", "reformer", {"n-heads": str(H), "d-head": str(dh), "n-hashes": "2", "n-buckets": "4",
                                                "chunk": "2"}, "none", x, pos, params,
               lambda x, pos, p: reformer(x, p, H, 2, 4, 2, 0))

    # Routing attention: one local head, one routed head with 3 centroids; windows of 4 over T = 11.
    H, dh = 2, 6
    x = torch.randn(B, T, D)
    centroids = torch.randn(H, 3, dh)
    params = {"wq": torch.randn(D, H * dh) / math.sqrt(D), "wv": torch.randn(D, H * dh) / math.sqrt(D),
              "wo": torch.randn(H * dh, D) / math.sqrt(H * dh),
              "centroids": centroids / centroids.norm(dim=-1, keepdim=True)}
    write_case("routing_local1", "routing", {"n-heads": str(H), "d-head": str(dh), "local-heads": "1", "n-clusters": "3",
                                             "window": "4"}, "none", x, pos, params,
               lambda x, pos, p: routing(x, p, H, 1, 4))

    # S4D trained by its recurrence (impl=scan) against the same kernel-and-convolution reference.
    M = 3
    x = torch.randn(B, T, D)
    params = {"win": torch.randn(D, D) / math.sqrt(D), "log_dt": torch.log(0.05 + 0.4 * torch.rand(D)),
              "a_re": torch.log(0.2 + torch.rand(D, M)), "a_im": 3 * torch.randn(D, M), "b": torch.randn(D, M, 2),
              "c": torch.randn(D, M, 2) / math.sqrt(2), "d_skip": torch.randn(D), "wo": torch.randn(D, D) / math.sqrt(D)}
    write_case("s4d_scan", "s4d", {"d-state": str(2 * M), "impl": "scan"}, "none", x, pos, params,
               lambda x, pos, p: s4d(x, p))


if __name__ == "__main__":
    main()
