// Compile-time guard on the ABI's layout: if a change moves any member of a v1 struct, the
// build fails here instead of silently breaking every plugin already compiled (rule 1 of the
// header: members are only ever appended).  Offsets are for LP64 (x86_64/aarch64 Linux).
#include "fedhost_plugin.h"

#define FHP_LAYOUT(type, member, offset) \
  _Static_assert(offsetof(type, member) == (offset), #type "." #member " moved")

FHP_LAYOUT(fhp_config_key, key, 8);
FHP_LAYOUT(fhp_config_key, description, 32);
_Static_assert(sizeof(fhp_config_key) == 40, "fhp_config_key v1 size");

FHP_LAYOUT(fhp_descriptor, kinds, 12);
FHP_LAYOUT(fhp_descriptor, id, 16);
FHP_LAYOUT(fhp_descriptor, config_keys, 48);
FHP_LAYOUT(fhp_descriptor, n_config_keys, 56);
FHP_LAYOUT(fhp_descriptor, n_aux_down, 64); /* 1.2: the 1.1 struct ended here */
FHP_LAYOUT(fhp_descriptor, n_aux_up, 68);
_Static_assert(sizeof(fhp_descriptor) == 72, "fhp_descriptor v1.2 size");

FHP_LAYOUT(fhp_update, client_id, 4);
FHP_LAYOUT(fhp_update, delta, 8);
FHP_LAYOUT(fhp_update, n_params, 16);
FHP_LAYOUT(fhp_update, n_samples, 24);
FHP_LAYOUT(fhp_update, coverage, 32);
FHP_LAYOUT(fhp_update, metrics, 40);
FHP_LAYOUT(fhp_update, n_metrics, 48);
FHP_LAYOUT(fhp_update, flags, 52);
_Static_assert(sizeof(fhp_update) == 56, "fhp_update v1 size");

FHP_LAYOUT(fhp_host, ctx, 8);
FHP_LAYOUT(fhp_host, log, 32);
FHP_LAYOUT(fhp_host, parallel_for, 40); /* 1.1: the 1.0 struct ended here */
FHP_LAYOUT(fhp_host, get_extension, 48); /* 1.2: the 1.1 struct ended here */
_Static_assert(sizeof(fhp_host) == 56, "fhp_host v1.2 size");

FHP_LAYOUT(fhp_initializer_ops, ctx, 8);
FHP_LAYOUT(fhp_initializer_ops, train_client, 16);
FHP_LAYOUT(fhp_initializer_ops, last_error, 32);
_Static_assert(sizeof(fhp_initializer_ops) == 40, "fhp_initializer_ops v1 size");

FHP_LAYOUT(fhp_client_ops, ctx, 8);
FHP_LAYOUT(fhp_client_ops, n_support, 16);
FHP_LAYOUT(fhp_client_ops, gradient, 32);
FHP_LAYOUT(fhp_client_ops, last_error, 48);
FHP_LAYOUT(fhp_client_ops, coverage, 56);
FHP_LAYOUT(fhp_client_ops, context, 64); /* 1.2: the 1.1 struct ended here */
_Static_assert(sizeof(fhp_client_ops) == 72, "fhp_client_ops v1.2 size");

FHP_LAYOUT(fhp_vtable, create, 8);
FHP_LAYOUT(fhp_vtable, destroy, 16);
FHP_LAYOUT(fhp_vtable, last_error, 24);
FHP_LAYOUT(fhp_vtable, get_extension, 32);
FHP_LAYOUT(fhp_vtable, aggregate, 40);
FHP_LAYOUT(fhp_vtable, initialize, 48);
FHP_LAYOUT(fhp_vtable, adjust_gradient, 56);
FHP_LAYOUT(fhp_vtable, train_local, 64);
FHP_LAYOUT(fhp_vtable, save_state, 72);
FHP_LAYOUT(fhp_vtable, load_state, 80);
FHP_LAYOUT(fhp_vtable, aggregate_round, 88); /* 1.2: the 1.1 table ended here */
FHP_LAYOUT(fhp_vtable, prepare_client, 96);
FHP_LAYOUT(fhp_vtable, adjust_gradient_in_context, 104);
FHP_LAYOUT(fhp_vtable, select_clients, 112);
_Static_assert(sizeof(fhp_vtable) == 120, "fhp_vtable v1.2 size");

/* 1.2 structs (new: their first layout is frozen here). */
FHP_LAYOUT(fhp_client_context, learning_rate, 24);
FHP_LAYOUT(fhp_client_context, seed, 32);
FHP_LAYOUT(fhp_client_context, n_params, 48);
FHP_LAYOUT(fhp_client_context, coverage, 56);
FHP_LAYOUT(fhp_client_context, aux_down, 64);
FHP_LAYOUT(fhp_client_context, aux_up, 80);
_Static_assert(sizeof(fhp_client_context) == 96, "fhp_client_context v1.2 size");
FHP_LAYOUT(fhp_round_context, n_clients, 12);
FHP_LAYOUT(fhp_round_context, sampled, 16);
FHP_LAYOUT(fhp_round_context, failed, 32);
FHP_LAYOUT(fhp_round_context, aux_up, 40);
FHP_LAYOUT(fhp_round_context, ctx, 56);
FHP_LAYOUT(fhp_round_context, report_metric, 64);
FHP_LAYOUT(fhp_round_context, last_error, 72);
FHP_LAYOUT(fhp_round_context, sample_counts, 80);
FHP_LAYOUT(fhp_round_context, client_loss, 88);
_Static_assert(sizeof(fhp_round_context) == 96, "fhp_round_context v1.2 size");
