// Package align turns the prompts of an edit into Prompt-to-Prompt's
// attention controls (docs/algorithm.md, sections 2–7): which tokens each
// word is, what kind of edit each target is, how target tokens map to
// source tokens, and when in the run each control applies.
//
// The engine does no alignment logic itself: New builds a Controller once
// per edit, and Controller.Step fills, for each diffusion step, the control
// tensors of the instrumented UNet (backend/graph; docs/algorithm.md,
// section 4). For every cross-attention layer, on the conditional half of
// the batch, the attention of target e becomes
//
//	A_tgt' = A_src · W_e + A_tgt ⊙ c_e     W_e: [77,77] (source token × target token), c_e: [77]
//
// with, at step i and target token n,
//
//	W_e[w,n] = G_e[w,n] · α_i[n] · E[n]
//	c_e[n]   = α_i[n] · E[n] · (1 − a[n]) + (1 − α_i[n])
//
// where
//
//   - G is the mapper: for a word swap (Replace) the replacement matrix M
//     (ReplaceMapper); for added or removed words (Refine) the one-hot gather
//     of the global token alignment, G[w,n] = a[n]·[map[n] = w] (Align); for
//     identical prompts (Reweight only) the identity;
//   - a[n] is 1 when target token n takes its attention from the source
//     (always 1 for Replace and Reweight; 0 for tokens Refine added);
//   - α_i[n] ∈ {0,1} is the cross-replace schedule: 1 inside the token's
//     window of steps (the global cross window, or its word's window);
//   - E[n] is the reweight factor of the token's word (1 if none); it acts
//     only inside the cross window, as in the reference.
//
// Outside every window W = 0 and c = 1, which leaves attention untouched.
// Self-attention of a target is replaced by the source's (A_src·V_tgt) on the
// eligible layers while the step lies in the self window: selfW[e] = 1.
//
// Windows are fractions of the run and round like the reference: the cross
// window [s, e) covers steps [⌊s·(T+1)⌋, ⌊e·(T+1)⌋) — T+1 because the
// reference sized it for PNDM's 51 calls — and the self window covers
// [⌊s·T⌋, ⌊e·T⌋). Cross 0.8 at T = 50 is steps 0–39; self 0.4 is 0–19.
//
// Words are matched on CLIP tokens (WordTokens), not on space-separated
// strings as in the reference, so punctuation and case do not hide them.
package align
