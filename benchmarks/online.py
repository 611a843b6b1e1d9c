"""Online routing with partial feedback: does updating from outcomes pay?

The RouterBench TEST queries (arc_challenge + mbpp, 573) are replayed as a stream in
a random order; for each query a policy picks one LLM and only that LLM's score (and
its real cost) is revealed. Every policy starts from the same information: a 2pl router
fitted (NUTS by default, ``--method``) on a small slice of the TRAIN files (``--slice``
queries, all 11 LLMs), or for LinUCB the same slice as its warm start. Utility per query is
``score - X * cost`` with X = ``--wtp`` (USD^-1), the router's willingness to pay.

Policies:

* ``static``: expected utility under the fitted posterior, never updated;
* ``greedy + updates``: expected utility, each outcome folded in by
  :class:`irt_bayes.online.OnlinePosterior` (ADF, items held);
* ``thompson + updates``: one posterior draw per query, same updates;
* ``LinUCB``: a disjoint linear UCB per LLM on the query's 384-d MiniLM embedding
  (Li et al., 2010; ridge 1, exploration alpha = ``--ucb-alpha``), reward = utility.

Scenarios:

* ``stationary``: the stream as recorded;
* ``drift``: from the middle of the stream on, the LLM the static router picks most
  often answers wrong half the time it was right (its accuracy halves); the online
  policies here use forgetting ``--forgetting``;
* ``new LLM``: the LLM that is best in hindsight is left out of the fitted pool and
  joins at the middle of the stream with the population prior
  (:meth:`OnlinePosterior.add_llm`; LinUCB gets a fresh arm); ``static`` never uses it.

Reported per scenario and policy, mean ± sd over ``--orders`` stream orders:
accuracy, cost per query, utility per query, and regret = the cumulative utility of
the best fixed LLM in hindsight minus the policy's (per query; negative beats it).
A figure shows cumulative regret over the stream.

Usage (from the repository root)::

    python benchmarks/online.py [--slice 150] [--wtp 20] [--orders 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, encode, machine, md, routerbench

POLICIES = ("static", "greedy + updates", "thompson + updates", "LinUCB")


class LinUCB:
    """Disjoint LinUCB: ridge regression of the reward on the context, per arm."""

    def __init__(self, dim: int, alpha: float) -> None:
        self.dim, self.alpha = dim, alpha
        self.Ainv: dict[str, np.ndarray] = {}
        self.b: dict[str, np.ndarray] = {}

    def add_arm(self, name: str) -> None:
        self.Ainv[name] = np.eye(self.dim)
        self.b[name] = np.zeros(self.dim)

    def choose(self, x: np.ndarray, arms: list[str]) -> str:
        ucb = []
        for a in arms:
            theta = self.Ainv[a] @ self.b[a]
            ucb.append(theta @ x + self.alpha * np.sqrt(x @ self.Ainv[a] @ x))
        return arms[int(np.argmax(ucb))]

    def update(self, arm: str, x: np.ndarray, reward: float) -> None:
        Ax = self.Ainv[arm] @ x
        self.Ainv[arm] -= np.outer(Ax, Ax) / (1.0 + x @ Ax)  # Sherman-Morrison
        self.b[arm] += reward * x


def stream_tables(test, llms: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Test queries answered by every LLM, their (n, J) scores and costs."""
    r = test.responses
    score = r.pivot_table(index="query_id", columns="llm", values="score").reindex(columns=llms)
    cost = r.pivot_table(index="query_id", columns="llm", values="cost").reindex(columns=llms)
    keep = score.notna().all(axis=1) & cost.notna().all(axis=1)
    q = test.queries.set_index("query_id").loc[score.index[keep]].reset_index()
    return q, score[keep].to_numpy(float), cost[keep].to_numpy(float)


def run(
    policy: str,
    router,
    q: pd.DataFrame,
    emb: np.ndarray,
    score: np.ndarray,
    cost: np.ndarray,
    llms: list[str],
    wtp: float,
    *,
    forgetting: float = 1.0,
    join: tuple[str, float, int] | None = None,
    warm: tuple[np.ndarray, pd.DataFrame] | None = None,
    ucb_alpha: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], object]:
    """One pass over the stream: per query the utility, score, cost and LLM of the pick,
    and the online posterior at the end."""
    from irt_bayes.online import OnlinePosterior
    from irt_bayes.routing import route

    n = len(q)
    util, got, paid, picks = np.empty(n), np.empty(n), np.empty(n), []
    col = {m: j for j, m in enumerate(llms)}
    if policy == "LinUCB":
        bandit = LinUCB(emb.shape[1], ucb_alpha)
        arms = [m for m in router.llms_]
        for m in arms:
            bandit.add_arm(m)
        w_emb, w_rows = warm
        for row in w_rows.itertuples(index=False):
            if row.llm in arms:
                bandit.update(row.llm, w_emb[row.pos], row.score - wtp * row.cost)
    online = OnlinePosterior(router, forgetting=forgetting)
    for t in range(n):
        if join is not None and t == join[2]:
            if policy == "LinUCB":
                bandit.add_arm(join[0])
                arms.append(join[0])
            elif policy != "static":
                online.add_llm(join[0], join[1])
        qt = q.iloc[[t]]
        if policy == "LinUCB":
            pick = bandit.choose(emb[t], arms)
        else:
            view = online.router_
            draws = view.predict_proba(qt, embeddings=emb[[t]])
            pol = "thompson" if policy.startswith("thompson") else "expected-utility"
            res = route(view, qt, draws=draws, costs=view.prices_, willingness_to_pay=wtp,
                        policy=pol, seed=t)  # fmt: skip
            pick = str(res.choices["llm"].iloc[0])
        j = col[pick]
        picks.append(pick)
        got[t], paid[t] = score[t, j], cost[t, j]
        util[t] = got[t] - wtp * paid[t]
        if policy == "LinUCB":
            bandit.update(pick, emb[t], util[t])
        elif policy != "static":
            obs = online.observations(qt, [pick], [got[t]], embeddings=emb[[t]], first_row=t)
            online.update(obs)
    return util, got, paid, picks, online


def refit_check(
    base, part: pd.DataFrame, q: pd.DataFrame, emb: np.ndarray, picks: list[str],
    got: np.ndarray, online,
):  # fmt: skip
    """Abilities after the online updates against a NUTS refit on the same outcomes,
    and each LLM's predicted accuracy on the queries it answered, before and after."""
    from irt_bayes import IRTRouter

    fb = pd.DataFrame(
        {"query_id": "stream-" + q["query_id"].astype(str), "query": q["query"], "llm": picks,
         "score": got, "dataset": q["dataset"]}
    )  # fmt: skip
    fb["cost"] = part.groupby("llm")["cost"].mean().reindex(fb["llm"]).to_numpy()
    refit = IRTRouter("2pl", method="nuts", progress=False, holdout=0.0, seed=0)
    refit.fit(pd.concat([part, fb], ignore_index=True))

    def centred(draws):
        th = draws["theta"][..., 0]
        th = th - th.mean(axis=1, keepdims=True)
        return th.mean(axis=0), th.std(axis=0)

    m_0, _ = centred(base.draws_)
    m_on, s_on = centred(online.router_.draws_)
    m_re, s_re = centred(refit.draws_)
    picks = np.asarray(picks)
    before = base.predict(q, embeddings=emb).pivot(index="query_id", columns="llm", values="p_mean")
    after = online.router_.predict(q, embeddings=emb)
    after = after.pivot(index="query_id", columns="llm", values="p_mean")
    ids = q["query_id"].astype(str).to_numpy()
    fit_rows = []
    for m in refit.llms_:
        sel = picks == m
        fit_rows.append(
            {"observed": got[sel].mean() if sel.any() else np.nan,
             "predicted before": before.loc[ids[sel], m].mean() if sel.any() else np.nan,
             "predicted after": after.loc[ids[sel], m].mean() if sel.any() else np.nan}
        )  # fmt: skip
    return pd.DataFrame(
        {"outcomes": pd.Series(picks).value_counts().reindex(refit.llms_).fillna(0).astype(int)
         .to_numpy(), "fitted mean": m_0, "online mean": m_on, "online sd": s_on,
         "refit mean": m_re, "refit sd": s_re, "(online - refit) / refit sd": (m_on - m_re) / s_re,
         "(fitted - refit) / refit sd": (m_0 - m_re) / s_re},
        index=pd.Index(refit.llms_, name="llm"),
    ).join(pd.DataFrame(fit_rows, index=pd.Index(refit.llms_, name="llm")))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slice", type=int, default=150, help="train queries the router starts from")
    ap.add_argument("--wtp", type=float, default=20.0, help="willingness to pay X (per USD)")
    ap.add_argument("--orders", type=int, default=3, help="random stream orders")
    ap.add_argument("--forgetting", type=float, default=0.97, help="forgetting in the drift run")
    ap.add_argument("--ucb-alpha", type=float, default=0.5)
    ap.add_argument("--method", default="nuts", choices=["nuts", "advi"], help="of the fit")
    ap.add_argument("--out", type=Path, default=RESULTS / "online.md")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from irt_bayes import IRTRouter

    t_start = time.time()
    train, test = routerbench("train"), routerbench("test")
    llms = list(train.llms)
    rng = np.random.default_rng(0)
    ids = rng.permutation(train.queries["query_id"].to_numpy())[: args.slice]
    part = train.responses[train.responses["query_id"].isin(ids)]
    q, score, cost = stream_tables(test, llms)
    emb = encode(q["query"].tolist())
    wq = part.drop_duplicates("query_id").reset_index(drop=True)
    w_emb = encode(wq["query"].tolist())
    pos = pd.Series(np.arange(len(wq)), index=wq["query_id"])
    warm_rows = part.assign(pos=pos.reindex(part["query_id"]).to_numpy())
    mid = len(q) // 2

    def fit(responses: pd.DataFrame):
        kw = {"progress": False, "holdout": 0.0, "seed": 0, "method": args.method}
        return IRTRouter("2pl", **kw).fit(responses)

    print(f"fitting the 2pl by {args.method} on {args.slice} train queries ...", flush=True)
    base = fit(part)
    # the static router's favourite drifts; the best fixed LLM in hindsight joins late
    u = score - args.wtp * cost
    best_fixed = llms[int(u.mean(axis=0).argmax())]
    pool_without = fit(part[part["llm"] != best_fixed])
    price = float(part.loc[part["llm"] == best_fixed, "cost"].mean())
    from irt_bayes.routing import route

    favourite = (
        route(base, q, embeddings=emb, costs=base.prices_, willingness_to_pay=args.wtp)
        .choices["llm"]
        .value_counts()
        .index[0]
    )
    rows, curves = [], {}
    for scenario in ("stationary", "drift", "new LLM"):
        for order in range(args.orders):
            perm = np.random.default_rng(100 + order).permutation(len(q))
            qo, eo, so, co = q.iloc[perm].reset_index(drop=True), emb[perm], score[perm], cost[perm]
            so = so.copy()
            router, join, lam = base, None, 1.0
            if scenario == "drift":
                j = llms.index(favourite)
                flip = np.random.default_rng(200 + order).random(len(q)) < 0.5
                late = np.arange(len(q)) >= mid
                so[late & flip, j] = 0.0
                lam = args.forgetting
            if scenario == "new LLM":
                router, join = pool_without, (best_fixed, price, mid)
            uo = so - args.wtp * co
            fixed = uo.sum(axis=0).max()  # best fixed LLM in hindsight on this stream
            runs = [(p, lam) for p in POLICIES]
            if scenario == "drift":  # what forgetting buys
                runs.insert(2, ("greedy + updates, no forgetting", 1.0))
            for policy, lam_p in runs:
                t0 = time.time()
                util, got, paid, picks, online = run(
                    policy.split(",")[0], router, qo, eo, so, co, llms, args.wtp,
                    forgetting=lam_p, join=join, warm=(w_emb, warm_rows),
                    ucb_alpha=args.ucb_alpha,
                )  # fmt: skip
                if scenario == "stationary" and policy == "greedy + updates" and order == 0:
                    check = refit_check(base, part, qo, eo, picks, got, online)
                regret = np.cumsum(uo[:, int(uo.sum(axis=0).argmax())]) - np.cumsum(util)
                curves.setdefault((scenario, policy), []).append(regret)
                rows.append(
                    {
                        "scenario": scenario,
                        "policy": policy,
                        "order": order,
                        "accuracy": got.mean(),
                        "cost per 1k queries $": 1000 * paid.mean(),
                        "utility per query": util.mean(),
                        "second-half utility": util[mid:].mean(),
                        "regret per query": (fixed - util.sum()) / len(q),
                        "best-LLM share, 2nd half": np.mean([p == best_fixed for p in picks[mid:]]),
                        "s": time.time() - t0,
                    }
                )
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    cols = ["accuracy", "cost per 1k queries $", "utility per query", "second-half utility",
            "regret per query", "best-LLM share, 2nd half"]  # fmt: skip
    g = df.groupby(["scenario", "policy"], sort=False)[cols]
    mean, sd = g.mean(), g.std()
    table = mean.copy().astype(object)
    for c in cols:
        table[c] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean[c], sd[c], strict=True)]
    figure = args.out.with_suffix(".png")
    _plot(curves, figure)
    text = (
        "# Online routing with partial feedback (RouterBench arc_challenge + mbpp)\n\n"
        f"Machine: {machine()}; {time.time() - t_start:.0f} s in all. Router: 2pl by "
        f"{args.method.upper()} on "
        f"{args.slice} train queries (all 11 LLMs); stream: {len(q)} test queries every LLM "
        f"answered, {args.orders} random orders (mean ± sd); utility = score - {args.wtp:g} x "
        f"cost (USD). Only the chosen LLM's outcome is revealed. Drift: {favourite} (the "
        f"static router's most frequent pick) loses half its correct answers from query "
        f"{mid} on; online policies there forget with lambda = {args.forgetting}. New LLM: "
        f"{best_fixed} (best fixed LLM in hindsight) is left out of the fit and joins at query "
        f"{mid} at ${price:.5f} per query. Regret: best fixed LLM in hindsight minus the "
        f"policy, per query (negative: better than any single LLM).\n\n"
        f"{md(table)}\n\n![cumulative regret]({figure.name})\n\n"
        "## The online update against a full refit\n\n"
        "After the stationary greedy run (order 0): each LLM's ability (centred over the "
        "pool) as fitted on the slice, after the online updates, and in a NUTS refit "
        "(nutpie, 4 x 500) of the 2pl on the slice plus the same revealed outcomes; and each "
        "LLM's mean P(correct) on the stream queries it answered, predicted before and "
        "after the updates, against what it scored there.\n\n"
        f"{md(check)}\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


def _plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(s for s, _ in curves))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), sharey=True)
    for ax, sc in zip(np.atleast_1d(axes), scenarios, strict=True):
        for (s, policy), reg in curves.items():
            if s == sc:
                style = "--" if policy == "static" else "-"
                ax.plot(np.mean(reg, axis=0), style, label=policy)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(sc)
        ax.set_xlabel("queries")
        ax.legend(fontsize=8)  # static and greedy coincide where no decision changed
    np.atleast_1d(axes)[0].set_ylabel("cumulative regret vs best fixed LLM")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
