#pragma once
/// @file adaptertune.h
/// Umbrella header: the whole public API.

#include "adaptertune/adapter_config.h"
#include "adaptertune/adapters/bottleneck_adapter.h"
#include "adaptertune/bert_config.h"
#include "adaptertune/bert_model.h"
#include "adaptertune/error.h"
#include "adaptertune/io/atomic_file.h"
#include "adaptertune/layers/activation.h"
#include "adaptertune/layers/attention.h"
#include "adaptertune/layers/bert_layer.h"
#include "adaptertune/layers/embeddings.h"
#include "adaptertune/layers/encoder.h"
#include "adaptertune/layers/feed_forward.h"
#include "adaptertune/layers/heads.h"
#include "adaptertune/layers/pooler.h"
#include "adaptertune/layers/sublayer_output.h"
#include "adaptertune/runtime.h"
#include "adaptertune/training/freeze_policy.h"
#include "adaptertune/training/optimizer.h"
#include "adaptertune/training/precision.h"
#include "adaptertune/version.h"
