/*
 * dist_internal.h — what the two implementations of dist.h (dist_mpi.c,
 * dist_single.c) share with dist_common.c. Not for use outside src/dist/.
 */
#ifndef IAPO_DIST_INTERNAL_H
#define IAPO_DIST_INTERNAL_H

/* Records that the current error message is held by every rank (it came out
 * of iapo_dist_agree): iapo_dist_error_shared compares against this copy. */
void dist_note_shared_error(void);

#endif
