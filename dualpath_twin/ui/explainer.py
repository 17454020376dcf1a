"""The "What is this?" explainer: the two KV-cache loading paths as a diagram and a few sentences."""

from __future__ import annotations

import streamlit as st

TEXT = """
Agentic LLM requests are **many short rounds over one long, growing context**. The context's KV-cache
was computed in earlier rounds and lives in **storage**, so each round must *load* tens of thousands of
tokens of KV (over a GB for DeepSeek-V3.2) but *computes* only a few hundred new tokens.
The **storage NIC (SNIC)**, not the GPU, then sets the throughput.

* **Basic** (conventional prefill/decode disaggregation): the prefill engine (PE) reads the KV through
  **its own node's SNIC** only. The decode nodes' SNICs only write, so their read bandwidth sits idle.
* **DualPath** adds a second path: the **decode node's SNIC** reads the KV into its DRAM, and it reaches
  the PE's GPU over the fast **compute network (CNIC)**. A scheduler picks the side with the shorter
  read queue for each request, pooling the storage bandwidth of *all* nodes.
* **Oracle** is DualPath with free I/O: the upper bound. **Layer-wise** streams KV one layer at a time.
"""

DOT = """
digraph paths {
  rankdir=TB; bgcolor="transparent"; fontname="Helvetica"; nodesep=0.5; ranksep=0.45;
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11, color="#555555", fillcolor="#f4f4f4"];
  edge [fontname="Helvetica", fontsize=10, penwidth=2];
  storage [label="Distributed storage\\n(KV-cache blocks)", shape=cylinder, fillcolor="#fff3cd"];
  subgraph cluster_pe { label="Prefill node"; style="rounded"; color="#999999"; fontname="Helvetica";
    pe_snic [label="PE SNIC"]; pe_dram [label="PE DRAM\\nbuffer"]; pe_cnic [label="PE CNIC"];
    pe_gpu [label="PE GPU (HBM)\\nprefill", fillcolor="#dbe9f6"]; }
  subgraph cluster_de { label="Decode node"; style="rounded"; color="#999999"; fontname="Helvetica";
    de_snic [label="DE SNIC"]; de_dram [label="DE DRAM\\nbuffer"]; de_cnic [label="DE CNIC"];
    de_gpu [label="DE GPU (HBM)\\ndecode", fillcolor="#dbe9f6"]; }
  storage -> pe_snic [color="#E45756", label="Basic + DualPath\\nPE read path"];
  pe_snic -> pe_dram [color="#E45756"]; pe_dram -> pe_cnic [color="#E45756"]; pe_cnic -> pe_gpu [color="#E45756"];
  storage -> de_snic [color="#4C78A8", label="DualPath only:\\nDE read path"];
  de_snic -> de_dram [color="#4C78A8"]; de_dram -> de_cnic [color="#4C78A8"];
  de_cnic -> pe_cnic [color="#4C78A8", label="compute network\\n(per layer)", constraint=false];
  {rank=same; pe_snic; de_snic} {rank=same; pe_dram; de_dram} {rank=same; pe_cnic; de_cnic} {rank=same; pe_gpu; de_gpu}
  pe_gpu -> de_cnic [color="#7F7F7F", style=dashed, label="prompt KV to decode"];
  de_cnic -> de_gpu [color="#7F7F7F", style=dashed];
}
"""


def render(expanded: bool = False) -> None:
    """Draw the explainer inside an expander."""
    with st.expander("What is this? The two KV-cache loading paths", expanded=expanded, icon=":material/help:"):
        c1, c2 = st.columns([1, 1])
        with c1:
            st.markdown(TEXT)
        with c2:
            st.graphviz_chart(DOT, width="stretch")
            st.caption("Red: the PE read path (Basic uses only this). Blue: DualPath's extra DE read path. "
                       "Grey dashed: prompt KV handed to the decode engine.")
